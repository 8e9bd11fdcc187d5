// What a security-group rule may say, as Cirrus enforces it: one definition
// for the API (which refuses anything else with InvalidParameterValue,
// writing nothing) and the agent (which refuses a host-state entry that
// breaks it, for that entry's instance only), so every rule the API accepts
// is one the agent applies.

export type RuleProtocol = "tcp" | "udp" | "icmp" | "all";

const inRange = (n: number, max: number) => Number.isInteger(n) && n >= 0 && n <= max;

/**
 * Why a rule's range cannot be enforced, or undefined when it can.
 * tcp/udp: ports within 0-65535 with from <= to, or -1/-1 for every port;
 * icmp: type and code each -1 (any) or 0-255, and a code only with a type
 * (iptables matches a code only within a type); all: the range is ignored,
 * as EC2 does.
 */
export function ruleRangeProblem(protocol: RuleProtocol, from: number, to: number): string | undefined {
  switch (protocol) {
    case "all":
      return undefined;
    case "tcp":
    case "udp":
      if (from === -1 && to === -1) return undefined;
      if (!inRange(from, 65535) || !inRange(to, 65535)) return `${protocol} ports must be within 0-65535 (or -1 for all), got ${from}-${to}`;
      return from > to ? `the ${protocol} port range ${from}-${to} runs backwards` : undefined;
    case "icmp": {
      const type = from === -1 ? undefined : from;
      const code = to === -1 ? undefined : to;
      if ((type !== undefined && !inRange(type, 255)) || (code !== undefined && !inRange(code, 255))) return `ICMP type and code must each be -1 (any) or 0-255, got ${from}/${to}`;
      return type === undefined && code !== undefined ? `an ICMP code (${to}) needs an ICMP type; with type -1 (any) the code must be -1 too` : undefined;
    }
    default:
      return `protocol must be tcp, udp, icmp or all, got ${JSON.stringify(String(protocol).slice(0, 32))}`;
  }
}
