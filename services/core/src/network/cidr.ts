// EC2's rules for CIDR parameters on top of the shared IPv4 module: a
// canonical block (no host bits) within a prefix range, or EC2's error
// naming the parameter.
import { parseExactCidr, type Cidr } from "@cirrus/common";
import { Ec2Error } from "../errors.js";
import { truncate } from "../validate.js";

/** Parses a canonical IPv4 CIDR within [minPrefix, maxPrefix]; otherwise InvalidParameterValue naming `param`. */
export function requireCidr(value: string, param: string, minPrefix = 0, maxPrefix = 32): Cidr {
  const c = parseExactCidr(value);
  if (!c) throw new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter ${param} is invalid. This is not a valid CIDR block.`);
  if (c.prefix < minPrefix || c.prefix > maxPrefix) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter ${param} is invalid. The prefix must be between /${minPrefix} and /${maxPrefix}.`);
  }
  return c;
}
