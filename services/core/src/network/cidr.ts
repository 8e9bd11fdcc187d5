// IPv4 CIDR parsing and arithmetic for VPCs, subnets and the address pool
// (parsing by ipaddr.js; EC2's rules on top).
import ipaddr from "ipaddr.js";
import { Ec2Error } from "@cirrus/common";
import { truncate } from "../validate.js";

export interface Cidr {
  /** Canonical text, e.g. 10.0.1.0/24. */
  text: string;
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

function toNumber(ip: string): number {
  return ipaddr.IPv4.parse(ip).toByteArray().reduce((n, b) => n * 256 + b, 0);
}

export function toIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** Parses a canonical IPv4 CIDR within [minPrefix, maxPrefix]; otherwise InvalidParameterValue naming `param`. */
export function parseCidr(value: string, param: string, minPrefix = 0, maxPrefix = 32): Cidr {
  const bad = () => new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter ${param} is invalid. This is not a valid CIDR block.`);
  if (!ipaddr.IPv4.isValidCIDR(value) || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(value)) throw bad();
  const [ip, bits] = value.split("/") as [string, string];
  const prefix = Number(bits);
  const base = toNumber(ip);
  if (base % 2 ** (32 - prefix) !== 0) throw bad();
  if (prefix < minPrefix || prefix > maxPrefix) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter ${param} is invalid. The prefix must be between /${minPrefix} and /${maxPrefix}.`);
  }
  return { text: `${toIp(base)}/${prefix}`, base, prefix };
}

export const size = (c: Cidr): number => 2 ** (32 - c.prefix);

export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && inner.base >= outer.base && inner.base + size(inner) <= outer.base + size(outer);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}

/** True when `ip` is a plain dotted IPv4 address. */
export function isIpv4(ip: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(ip) && ipaddr.IPv4.isValidFourPartDecimal(ip);
}

export function cidrContainsIp(c: Cidr, ip: string): boolean {
  const n = toNumber(ip);
  return n >= c.base && n < c.base + size(c);
}
