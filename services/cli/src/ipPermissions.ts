// The aws CLI's shortcut for one security group rule
// (awscli/customizations/ec2/secgroupsimplify.py): `--protocol tcp --port
// 8000-8080 --cidr 10.0.0.0/16` or `--source-group sg-…` instead of
// `--ip-permissions`. The options build a single IpPermissions entry; mixing
// them with --ip-permissions is refused, as the aws CLI does.
import { parameterError, UsageError } from "./errors.js";
import type { ParamSpec } from "./params.js";

export const SIMPLE_RULE_PARAMS: ParamSpec[] = [
  { flag: "protocol", kind: "string", description: "tcp, udp, icmp, all, or a protocol number (shortcut for --ip-permissions)" },
  { flag: "port", kind: "string", description: "a port or range: 22, 8000-8080, or all / -1 (for icmp: type[-code])" },
  { flag: "cidr", kind: "string", description: "the IPv4 range the rule covers, e.g. 10.0.0.0/16" },
  { flag: "source-group", kind: "string", description: "the security group (sg-…) the rule covers" },
  { flag: "group-owner", kind: "string", description: "the account owning --source-group" },
];

/** `--protocol`: a name or a number 0–255 (-1 and `all` mean every protocol, sent as "-1"). */
export function parseProtocol(value: string): string {
  if (/^-?\d+$/.test(value)) {
    const n = Number(value);
    if ((n < 0 || n > 255) && n !== -1) throw parameterError("--protocol", "protocol numbers must be in the range 0-255 or -1 to specify all protocols");
    return value;
  }
  if (!["tcp", "udp", "icmp", "all"].includes(value)) {
    throw parameterError("--protocol", "protocol parameter should be one of: tcp|udp|icmp|all or any valid protocol number.");
  }
  return value === "all" ? "-1" : value;
}

/** `--port`: `22` → 22..22, `8000-8080` → 8000..8080, `all` or `-1` → -1..-1. */
export function parsePort(value: string): { FromPort: number; ToPort: number } {
  if (value === "all" || value === "-1") return { FromPort: -1, ToPort: -1 };
  const m = /^(\d+)(?:-(\d+))?$/.exec(value.trim());
  if (!m) throw parameterError("--port", "port parameter should be of the form <from[-to]> (e.g. 22 or 22-25)");
  return { FromPort: Number(m[1]), ToPort: Number(m[2] ?? m[1]) };
}

/** `--source-group`: Cirrus rules name groups by ID (UserIdGroupPair has no GroupName). */
export function parseSourceGroup(value: string): string {
  if (!value.startsWith("sg-")) throw parameterError("--source-group", `expected a security group ID (sg-…), received '${value}'`);
  return value;
}

const SIMPLE_FIELDS = { Protocol: "protocol", Port: "port", Cidr: "cidr", SourceGroup: "source-group", GroupOwner: "group-owner" } as const;

/**
 * `prepare` for authorize/revoke: folds the shortcut options' fields into one
 * IpPermissions entry. Without them the fields pass through unchanged.
 */
export function simpleRule(fields: Record<string, unknown>): Record<string, unknown> {
  const rest: Record<string, unknown> = {};
  const given: Partial<Record<keyof typeof SIMPLE_FIELDS, string>> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (k in SIMPLE_FIELDS) given[k as keyof typeof SIMPLE_FIELDS] = v as string;
    else rest[k] = v;
  }
  const names = Object.keys(given) as (keyof typeof SIMPLE_FIELDS)[];
  if (names.length === 0) return fields;
  if (rest.IpPermissions !== undefined) {
    throw new UsageError(`The --${SIMPLE_FIELDS[names[0]!]} option is not compatible with the --ip-permissions option`);
  }
  const rule: Record<string, unknown> = {};
  if (given.Protocol !== undefined) rule.IpProtocol = parseProtocol(given.Protocol);
  if (given.Port !== undefined) Object.assign(rule, parsePort(given.Port));
  if (given.Cidr !== undefined) rule.IpRanges = [{ CidrIp: given.Cidr }];
  if (given.SourceGroup !== undefined || given.GroupOwner !== undefined) {
    rule.UserIdGroupPairs = [{
      ...(given.SourceGroup !== undefined ? { GroupId: parseSourceGroup(given.SourceGroup) } : {}),
      ...(given.GroupOwner !== undefined ? { UserId: given.GroupOwner } : {}),
    }];
  }
  return { ...rest, IpPermissions: [rule] };
}
