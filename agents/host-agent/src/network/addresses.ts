// Strict IPv4, CIDR and MAC parsing. Every address that reaches argv, an
// iptables-restore script or a dnsmasq file has been through one of these
// first, so none of them can carry anything but digits, dots, colons and a
// slash.

const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
/** Dotted quad without leading zeros (which some tools read as octal). */
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const CIDR = new RegExp(`^(${OCTET}(?:\\.${OCTET}){3})/(3[0-2]|[12]?[0-9])$`);
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/** An IPv4 network: `network` has no host bits set. */
export interface Cidr {
  network: string;
  prefix: number;
}

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

/** The address as an unsigned 32-bit integer. Precondition: isIpv4(ip). */
export function ipToInt(ip: string): number {
  return ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * "a.b.c.d/n" as a Cidr with the host bits cleared (as iptables itself
 * would), or undefined when the text is not exactly that shape.
 */
export function parseCidr(text: string): Cidr | undefined {
  const m = CIDR.exec(text);
  if (!m) return undefined;
  const prefix = Number(m[2]);
  return { network: intToIp((ipToInt(m[1]!) & maskOf(prefix)) >>> 0), prefix };
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
  return intToIp(maskOf(prefix));
}

export function contains(c: Cidr, ip: string): boolean {
  return ((ipToInt(ip) & maskOf(c.prefix)) >>> 0) === ipToInt(c.network);
}

/** The first and last address of the network (network and broadcast address). */
export function bounds(c: Cidr): { first: string; last: string } {
  const first = ipToInt(c.network);
  return { first: c.network, last: intToIp((first | (~maskOf(c.prefix) >>> 0)) >>> 0) };
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.network) || contains(b, a.network);
}

/** A unicast MAC address (multicast bit clear), lowercased; undefined when malformed. */
export function parseUnicastMac(text: string): string | undefined {
  if (!MAC.test(text)) return undefined;
  const mac = text.toLowerCase();
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 ? mac : undefined;
}
