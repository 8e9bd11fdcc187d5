// IPv4 addresses, CIDR blocks and MACs, for the control plane and the agent
// alike. Parsing is strict: dotted decimal without leading zeros (which
// inet_aton and some tools read as octal, so `010.0.0.0/8` would mean
// 8.0.0.0/8), a decimal prefix, nothing else. Every address that reaches SQL,
// argv, an iptables-restore script or a dnsmasq file has been through this
// module, so it carries only digits, dots, colons and a slash.
// Parsing and mask arithmetic are ipaddr.js's; the strictness is ours.
import ipaddr from "ipaddr.js";

/** An IPv4 network: `network` has no host bits set. */
export interface Cidr {
  network: string;
  prefix: number;
}

const PREFIX = /^(3[0-2]|[12]?[0-9])$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/** True for a plain dotted-decimal IPv4 address ("10.0.1.5"; not "010.0.1.5", "10.1", "0x0a.0.0.1"). */
export function isIpv4(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** The address as an unsigned 32-bit integer. Precondition: isIpv4(ip). */
export function ipToInt(ip: string): number {
  return ipaddr.IPv4.parse(ip).toByteArray().reduce((n, octet) => n * 256 + octet, 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * "a.b.c.d/n" as a Cidr with the host bits cleared (as iptables itself
 * would), or undefined when the text is not exactly that shape.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0 || !isIpv4(text.slice(0, slash)) || !PREFIX.test(text.slice(slash + 1))) return undefined;
  return { network: ipaddr.IPv4.networkAddressFromCIDR(text).toString(), prefix: Number(text.slice(slash + 1)) };
}

/** Like parseCidr, but undefined also when host bits are set ("10.0.0.5/24"). */
export function parseExactCidr(text: string): Cidr | undefined {
  const c = parseCidr(text);
  return c && cidrText(c) === text ? c : undefined;
}

export function cidrText(c: Cidr): string {
  return `${c.network}/${c.prefix}`;
}

/** The dotted netmask of a prefix length, e.g. 24 → 255.255.255.0. */
export function netmask(prefix: number): string {
  return ipaddr.IPv4.subnetMaskFromPrefixLength(prefix).toString();
}

/** How many addresses the block holds, network and broadcast included. */
export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

/** The n-th address of the block (0 is the network address). Precondition: 0 <= n < size(c). */
export function nthAddress(c: Cidr, n: number): string {
  return intToIp(ipToInt(c.network) + n);
}

/** True when `ip` (a valid address) is inside the block. */
export function contains(c: Cidr, ip: string): boolean {
  return ipaddr.IPv4.parse(ip).match(ipaddr.IPv4.parse(c.network), c.prefix);
}

/** True when `inner` lies entirely inside `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.network);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.network) || contains(b, a.network);
}

/** The first and last address of the network (network and broadcast address). */
export function bounds(c: Cidr): { first: string; last: string } {
  return { first: c.network, last: ipaddr.IPv4.broadcastAddressFromCIDR(cidrText(c)).toString() };
}

/** A unicast MAC address (multicast bit clear), lowercased; undefined when malformed. */
export function parseUnicastMac(text: string): string | undefined {
  if (!MAC.test(text)) return undefined;
  const mac = text.toLowerCase();
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 ? mac : undefined;
}

/** The MAC of an instance's NIC: 52:54:00 (QEMU's prefix) + the address's last three octets, unique on a subnet. */
export function macFor(ip: string): string {
  return `52:54:00:${ipaddr.IPv4.parse(ip).octets.slice(1).map((o) => o.toString(16).padStart(2, "0")).join(":")}`;
}

/** The host's address on a subnet's bridge: the first address after the network address (EC2's VPC router). */
export function gatewayOf(subnet: Cidr): string {
  return nthAddress(subnet, 1);
}
