// EC2-format resource IDs: a prefix, a dash and 17 lowercase hex digits.
import { randomBytes } from "node:crypto";

export type IdPrefix = "i" | "ami" | "r" | "vol" | "snap" | "sg" | "sgr" | "eipalloc" | "eipassoc" | "vpc" | "subnet" | "key" | "lt" | "h";

/** A new random ID such as `i-0a1b2c3d4e5f60718`. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}-${randomBytes(9).toString("hex").slice(0, 17)}`;
}

/** True when `value` is a well-formed ID with that prefix. */
export function isId(prefix: IdPrefix, value: string): boolean {
  return new RegExp(`^${prefix}-[0-9a-f]{17}$`).test(value);
}
