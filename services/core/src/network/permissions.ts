// EC2 IpPermissions ↔ rule rows: validation and normalisation of what
// Authorize/Revoke take, and grouping of rows back into IpPermissions.
import { cidrText, isId, ruleRangeProblem } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import { Ec2Error } from "../errors.js";
import { truncate } from "../validate.js";
import { requireCidr } from "./cidr.js";

/** One rule as stored: exactly one of cidr and sourceGroupId. */
export interface RuleSpec {
  protocol: "tcp" | "udp" | "icmp" | "-1";
  fromPort: number;
  toPort: number;
  cidr: string | null;
  sourceGroupId: string | null;
  description: string;
}

const PROTOCOLS: Record<string, RuleSpec["protocol"]> = { tcp: "tcp", "6": "tcp", udp: "udp", "17": "udp", icmp: "icmp", "1": "icmp", "-1": "-1", all: "-1" };

/** EC2's own input rules first, then the range rule the agents enforce (common/securityRules.ts). */
function portRange(protocol: RuleSpec["protocol"], from: number | undefined, to: number | undefined): [number, number] {
  if (protocol === "-1") return [-1, -1];
  if (protocol === "icmp") {
    const range: [number, number] = [from ?? -1, to ?? -1];
    const problem = ruleRangeProblem("icmp", ...range);
    if (problem) throw new Ec2Error("InvalidParameterValue", `Invalid ICMP type/code ${from}/${to}: ${problem}`);
    return range;
  }
  if (from === undefined || to === undefined) {
    throw new Ec2Error("InvalidParameterValue", `Invalid value for portRange. Must specify both from and to ports with TCP/UDP.`);
  }
  for (const p of [from, to]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Ec2Error("InvalidParameterValue", `Invalid port ${p}: ports must be from 0 to 65535`);
  }
  const problem = ruleRangeProblem(protocol, from, to);
  if (problem) throw new Ec2Error("InvalidParameterValue", `Invalid port range ${from}-${to}: ${problem}`);
  return [from, to];
}

/** The rules a request names, from IpPermissions or EC2's legacy flat parameters. */
export function rulesOf(req: { IpPermissions: compute.IpPermission[]; IpProtocol: string; FromPort?: number; ToPort?: number; CidrIp: string }): RuleSpec[] {
  const perms: compute.IpPermission[] = [...req.IpPermissions];
  if (req.IpProtocol || req.CidrIp) {
    if (perms.length) throw new Ec2Error("InvalidParameterCombination", "The parameter IpPermissions cannot be used with IpProtocol, FromPort, ToPort or CidrIp");
    perms.push({ IpProtocol: req.IpProtocol, FromPort: req.FromPort, ToPort: req.ToPort, IpRanges: req.CidrIp ? [{ CidrIp: req.CidrIp, Description: "" }] : [], UserIdGroupPairs: [] });
  }
  if (perms.length === 0) throw new Ec2Error("MissingParameter", "The request must contain the parameter IpPermissions");
  const rules: RuleSpec[] = [];
  for (const p of perms) {
    const protocol = PROTOCOLS[p.IpProtocol.toLowerCase()];
    if (!protocol) throw new Ec2Error("InvalidParameterValue", `Invalid value '${truncate(p.IpProtocol)}' for IP protocol. Unknown protocol.`);
    const [fromPort, toPort] = portRange(protocol, p.FromPort, p.ToPort);
    if (p.IpRanges.length === 0 && p.UserIdGroupPairs.length === 0) {
      throw new Ec2Error("InvalidPermission.Malformed", "Each IpPermission needs at least one IpRange or UserIdGroupPair");
    }
    for (const r of p.IpRanges) {
      const cidr = cidrText(requireCidr(r.CidrIp, "CidrIp"));
      rules.push({ protocol, fromPort, toPort, cidr, sourceGroupId: null, description: r.Description });
    }
    for (const g of p.UserIdGroupPairs) {
      if (!isId("sg", g.GroupId)) throw new Ec2Error("InvalidGroupId.Malformed", `Invalid id: "${truncate(g.GroupId)}"`);
      rules.push({ protocol, fromPort, toPort, cidr: null, sourceGroupId: g.GroupId, description: g.Description });
    }
  }
  for (const r of rules) {
    if (r.description.length > 255) throw new Ec2Error("InvalidParameterValue", "Rule descriptions are at most 255 characters");
  }
  return rules;
}

/** Stable key of a rule, for duplicate detection and matching. */
export const ruleKey = (r: Pick<RuleSpec, "protocol" | "fromPort" | "toPort" | "cidr" | "sourceGroupId">): string =>
  `${r.protocol}|${r.fromPort}|${r.toPort}|${r.cidr ?? ""}|${r.sourceGroupId ?? ""}`;

export function describeRule(r: RuleSpec): string {
  return `peer: ${r.cidr ?? r.sourceGroupId}, ${r.protocol === "-1" ? "ALL" : r.protocol.toUpperCase()}, from port: ${r.fromPort}, to port: ${r.toPort}, ALLOW`;
}

/** Rows of one direction grouped into EC2 IpPermissions (one per protocol and port range). */
export function toIpPermissions(rules: readonly RuleSpec[], ownerId: string): compute.IpPermission[] {
  const byRange = new Map<string, compute.IpPermission>();
  for (const r of rules) {
    const key = `${r.protocol}|${r.fromPort}|${r.toPort}`;
    let perm = byRange.get(key);
    if (!perm) {
      perm = { IpProtocol: r.protocol, FromPort: r.protocol === "-1" ? undefined : r.fromPort, ToPort: r.protocol === "-1" ? undefined : r.toPort, IpRanges: [], UserIdGroupPairs: [] };
      byRange.set(key, perm);
    }
    if (r.cidr) perm.IpRanges.push({ CidrIp: r.cidr, Description: r.description });
    else perm.UserIdGroupPairs.push({ GroupId: r.sourceGroupId!, UserId: ownerId, Description: r.description });
  }
  return [...byRange.values()];
}
