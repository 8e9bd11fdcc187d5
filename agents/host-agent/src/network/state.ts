// Validation of what the control plane sends about networking, before
// anything touches the host: a NIC (InstanceSpec.network) and a whole
// HostNetworkState. Everything downstream works only on these Valid* types.
import { type Cidr, type RuleProtocol, bounds, cidrText, contains, isId, isIpv4, parseCidr, parseExactCidr, parseUnicastMac, ruleRangeProblem } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import { DriverError } from "../driver/types.js";

export interface ValidInterface {
  subnetId: string;
  subnet: Cidr;
  gatewayIp: string;
  privateIp: string;
  /** Lowercase. */
  mac: string;
}


/**
 * One allow rule. tcp/udp: `from`..`to` is a port range, undefined for all
 * ports. icmp: `from` is the type and `to` the code, each undefined for any.
 */
export interface ValidRule {
  protocol: RuleProtocol;
  from?: number;
  to?: number;
  /** Sources (ingress) or destinations (egress). */
  cidrs: Cidr[];
}

export interface ValidFirewall {
  ingress: ValidRule[];
  egress: ValidRule[];
}

export interface ValidElasticIp {
  publicIp: string;
  privateIp: string;
  instanceId: string;
}

export interface ValidNetworkState {
  firewalls: Map<string, ValidFirewall>;
  elasticIps: ValidElasticIp[];
  metadata: Map<string, agent.InstanceMetadata>;
}

export const EMPTY_NETWORK_STATE: ValidNetworkState = { firewalls: new Map(), elasticIps: [], metadata: new Map() };

function invalidSpec(message: string): never {
  throw new DriverError("InvalidSpec", `network: ${message}`);
}

/**
 * The NIC with every field checked: subnet id, a network CIDR between /8 and
 * /30, gateway and private address inside it (neither the network nor the
 * broadcast address, and different), a unicast MAC.
 * Throws DriverError("InvalidSpec") naming the first bad field.
 */
export function validateInterface(ni: agent.NetworkInterface): ValidInterface {
  if (!isId("subnet", ni.subnetId)) invalidSpec(`subnetId must look like subnet-0123456789abcdef0, got ${JSON.stringify(ni.subnetId.slice(0, 64))}`);
  const subnet = parseExactCidr(ni.subnetCidr);
  if (!subnet || subnet.prefix < 8 || subnet.prefix > 30) invalidSpec(`subnetCidr must be a network address with a prefix of /8 to /30, got ${JSON.stringify(ni.subnetCidr.slice(0, 64))}`);
  const { first, last } = bounds(subnet);
  const host = (name: string, ip: string) => {
    if (!isIpv4(ip) || !contains(subnet, ip) || ip === first || ip === last) invalidSpec(`${name} must be a host address in ${cidrText(subnet)}, got ${JSON.stringify(ip.slice(0, 64))}`);
    return ip;
  };
  const gatewayIp = host("gatewayIp", ni.gatewayIp);
  const privateIp = host("privateIp", ni.privateIp);
  if (privateIp === gatewayIp) invalidSpec(`privateIp ${privateIp} is the gateway address`);
  const mac = parseUnicastMac(ni.macAddress) ?? invalidSpec(`macAddress must be a unicast MAC such as 52:54:00:12:34:56, got ${JSON.stringify(ni.macAddress.slice(0, 64))}`);
  return { subnetId: ni.subnetId, subnet, gatewayIp, privateIp, mac };
}

/** An entry of a host state that was left out, and why. */
export interface StateProblem {
  /** The instance the entry was about, when it names a well-formed one. */
  instanceId?: string;
  problem: string;
}

class EntryError extends Error {}

function invalidEntry(message: string): never {
  throw new EntryError(message);
}

function instanceId(where: string, id: string): string {
  if (!isId("i", id)) invalidEntry(`${where}: not an instance id: ${JSON.stringify(id.slice(0, 64))}`);
  return id;
}

function validateRule(where: string, r: agent.FirewallRule): ValidRule {
  const cidrs = r.cidrs.map((text) => parseCidr(text) ?? invalidEntry(`${where}: not an IPv4 CIDR: ${JSON.stringify(text.slice(0, 64))}`));
  const problem = ruleRangeProblem(r.protocol as RuleProtocol, r.fromPort, r.toPort);
  if (problem) invalidEntry(`${where}: ${problem}`);
  const protocol = r.protocol as RuleProtocol;
  const given = (n: number) => (n === -1 ? undefined : n);
  // EC2 ignores the ports of an all-protocols rule; so do we.
  if (protocol === "all") return { protocol, cidrs };
  if (protocol === "icmp") return { protocol, from: given(r.fromPort), to: given(r.toPort), cidrs };
  return r.fromPort === -1 ? { protocol, cidrs } : { protocol, from: r.fromPort, to: r.toPort, cidrs };
}

/** Keeps the entries that validate and appear once by `key`; every other one is reported and left out (both copies of a twice-listed key). */
function entries<T extends { instanceId: string }, V>(items: readonly T[], check: (item: T) => { key: string; value: V }, what: string, problems: StateProblem[]): Map<string, V> {
  const out = new Map<string, V>();
  const twice = new Set<string>();
  for (const item of items) {
    let checked: ReturnType<typeof check>;
    try {
      checked = check(item);
    } catch (err) {
      if (!(err instanceof EntryError)) throw err;
      problems.push({ instanceId: isId("i", item.instanceId) ? item.instanceId : undefined, problem: err.message });
      continue;
    }
    if (out.has(checked.key) || twice.has(checked.key)) {
      if (!twice.has(checked.key)) problems.push({ instanceId: item.instanceId, problem: `${what}: ${checked.key} is listed twice; both left out` });
      out.delete(checked.key);
      twice.add(checked.key);
      continue;
    }
    out.set(checked.key, checked.value);
  }
  return out;
}

/**
 * The state with every field checked, entry by entry, so one bad entry
 * costs only its own instance: an instance whose firewall has a bad rule,
 * or is listed twice, gets no firewall entry (a deny-all, as for an
 * instance left out); a malformed or twice-mapped elastic IP and a
 * malformed or repeated metadata entry are left out. Each is reported in
 * `problems`, naming its instance when it can. Never throws for bad input.
 */
export function validateNetworkState(s: agent.HostNetworkState): { state: ValidNetworkState; problems: StateProblem[] } {
  const problems: StateProblem[] = [];
  const firewalls = entries(s.firewalls, (f) => {
    const id = instanceId("firewalls", f.instanceId);
    const value: ValidFirewall = {
      ingress: f.ingress.map((r, i) => validateRule(`${id} ingress[${i}]`, r)),
      egress: f.egress.map((r, i) => validateRule(`${id} egress[${i}]`, r)),
    };
    return { key: id, value };
  }, "firewalls", problems);
  const elasticIps = entries(s.elasticIps, (e) => {
    const id = instanceId("elasticIps", e.instanceId);
    if (!isIpv4(e.publicIp) || !isIpv4(e.privateIp)) invalidEntry(`elasticIps: not IPv4 addresses: ${JSON.stringify(`${e.publicIp.slice(0, 64)} → ${e.privateIp.slice(0, 64)}`)}`);
    return { key: e.publicIp, value: { publicIp: e.publicIp, privateIp: e.privateIp, instanceId: id } };
  }, "elasticIps", problems);
  const metadata = entries(s.metadata, (m) => {
    const id = instanceId("metadata", m.instanceId);
    return { key: id, value: m };
  }, "metadata", problems);
  return { state: { firewalls, elasticIps: [...elasticIps.values()], metadata }, problems };
}
