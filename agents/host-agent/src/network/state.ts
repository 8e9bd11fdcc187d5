// Validation of what the control plane sends about networking, before
// anything touches the host: a NIC (InstanceSpec.network) and a whole
// HostNetworkState. Everything downstream works only on these Valid* types.
import { type Cidr, bounds, cidrText, contains, isId, isIpv4, parseCidr, parseExactCidr, parseUnicastMac } from "@cirrus/common";
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

export type Protocol = "tcp" | "udp" | "icmp" | "all";

/**
 * One allow rule. tcp/udp: `from`..`to` is a port range, undefined for all
 * ports. icmp: `from` is the type and `to` the code, each undefined for any.
 */
export interface ValidRule {
  protocol: Protocol;
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

/** A HostNetworkState that can never be applied; nothing was changed. */
export class NetworkStateError extends Error {
  override name = "NetworkStateError";
}

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

function invalidState(message: string): never {
  throw new NetworkStateError(message);
}

function instanceId(where: string, id: string): string {
  if (!isId("i", id)) invalidState(`${where}: not an instance id: ${JSON.stringify(id.slice(0, 64))}`);
  return id;
}

function validateRule(where: string, r: agent.FirewallRule): ValidRule {
  const cidrs = r.cidrs.map((text) => parseCidr(text) ?? invalidState(`${where}: not an IPv4 CIDR: ${JSON.stringify(text.slice(0, 64))}`));
  const inRange = (n: number, max: number) => Number.isInteger(n) && n >= 0 && n <= max;
  switch (r.protocol) {
    case "all":
      // EC2 ignores the ports of an all-protocols rule; so do we.
      return { protocol: "all", cidrs };
    case "tcp":
    case "udp": {
      if (r.fromPort === -1 && r.toPort === -1) return { protocol: r.protocol, cidrs };
      if (!inRange(r.fromPort, 65535) || !inRange(r.toPort, 65535) || r.fromPort > r.toPort) {
        invalidState(`${where}: ${r.protocol} ports must be -1/-1 or a range within 0-65535, got ${r.fromPort}-${r.toPort}`);
      }
      return { protocol: r.protocol, from: r.fromPort, to: r.toPort, cidrs };
    }
    case "icmp": {
      const type = r.fromPort === -1 ? undefined : r.fromPort;
      const code = r.toPort === -1 ? undefined : r.toPort;
      if ((type !== undefined && !inRange(type, 255)) || (code !== undefined && !inRange(code, 255)) || (type === undefined && code !== undefined)) {
        invalidState(`${where}: icmp type/code must be -1 or 0-255 (a code needs a type), got ${r.fromPort}/${r.toPort}`);
      }
      return { protocol: "icmp", from: type, to: code, cidrs };
    }
    default:
      return invalidState(`${where}: protocol must be tcp, udp, icmp or all, got ${JSON.stringify(String(r.protocol).slice(0, 32))}`);
  }
}

/**
 * The state with every field checked. Throws NetworkStateError naming the
 * first problem: malformed ids, addresses or rules, an instance listed twice,
 * a public address mapped twice.
 */
export function validateNetworkState(s: agent.HostNetworkState): ValidNetworkState {
  const firewalls = new Map<string, ValidFirewall>();
  for (const f of s.firewalls) {
    const id = instanceId("firewalls", f.instanceId);
    if (firewalls.has(id)) invalidState(`firewalls: ${id} is listed twice`);
    firewalls.set(id, {
      ingress: f.ingress.map((r, i) => validateRule(`${id} ingress[${i}]`, r)),
      egress: f.egress.map((r, i) => validateRule(`${id} egress[${i}]`, r)),
    });
  }
  const publicIps = new Set<string>();
  const elasticIps = s.elasticIps.map((e) => {
    if (!isIpv4(e.publicIp) || !isIpv4(e.privateIp)) invalidState(`elasticIps: not IPv4 addresses: ${JSON.stringify(`${e.publicIp.slice(0, 64)} → ${e.privateIp.slice(0, 64)}`)}`);
    if (publicIps.has(e.publicIp)) invalidState(`elasticIps: ${e.publicIp} is mapped twice`);
    publicIps.add(e.publicIp);
    return { publicIp: e.publicIp, privateIp: e.privateIp, instanceId: instanceId("elasticIps", e.instanceId) };
  });
  const metadata = new Map<string, agent.InstanceMetadata>();
  for (const m of s.metadata) {
    const id = instanceId("metadata", m.instanceId);
    if (metadata.has(id)) invalidState(`metadata: ${id} is listed twice`);
    metadata.set(id, m);
  }
  return { firewalls, elasticIps, metadata };
}
