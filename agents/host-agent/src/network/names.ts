// Deterministic names for what the agent creates on the host. Interface names
// are at most 15 characters (IFNAMSIZ - 1) and iptables chain names at most
// 28, so ids are shortened by hashing rather than truncation: ids that share
// a long prefix (i-0000000000000000a, …b) must not collide.
import { createHash } from "node:crypto";

/** Chain-name prefixes: short, uppercase, no dash (so one prefix is never the start of another's chains). */
export const NET_PREFIX = /^[A-Z][A-Z0-9]{0,7}$/;

function shortHash(id: string, length: number): string {
  return createHash("sha256").update(id, "utf8").digest("hex").slice(0, length);
}

/** "cb" + 13 hex digits: the bridge of a subnet (15 characters). */
export function bridgeName(subnetId: string): string {
  return `cb${shortHash(subnetId, 13)}`;
}

/** "ct" + 13 hex digits: the tap device of an instance's NIC (15 characters). */
export function tapName(instanceId: string): string {
  return `ct${shortHash(instanceId, 13)}`;
}

export const BRIDGE_NAME = /^cb[0-9a-f]{13}$/;

/** The fixed chains of one agent, named by its prefix (e.g. CIRRUS-FORWARD). */
export interface MainChains {
  /** filter, from FORWARD: every packet into, out of or across our bridges. */
  forward: string;
  /** filter, from INPUT: what guests may send to the host itself. */
  input: string;
  /** filter: host services a guest may reach once its source address is verified. */
  services: string;
  /** filter, from OUTPUT: what the host itself sends to guests, through their IN chains. */
  output: string;
  /** bridge filter (ebtables), from FORWARD and INPUT: what guests' taps put on our bridges. */
  l2: string;
  /** nat, from PREROUTING and OUTPUT: elastic-IP DNAT. */
  prerouting: string;
  /** nat, from PREROUTING: 169.254.169.254 → the metadata service. */
  metadata: string;
  /** nat, from POSTROUTING: elastic-IP SNAT and the optional outbound NAT. */
  postrouting: string;
}

export function mainChains(prefix: string): MainChains {
  return {
    forward: `${prefix}-FORWARD`,
    input: `${prefix}-INPUT`,
    services: `${prefix}-SERVICES`,
    output: `${prefix}-OUTPUT`,
    l2: `${prefix}-L2`,
    prerouting: `${prefix}-PREROUTING`,
    metadata: `${prefix}-METADATA`,
    postrouting: `${prefix}-POSTROUTING`,
  };
}

/** An instance's ingress (IN), egress (OUT) or bridge-level (L2, ebtables) chain: prefix + 12 hex digits, at most 25 characters. */
export function instanceChain(prefix: string, instanceId: string, direction: "IN" | "OUT" | "L2"): string {
  return `${prefix}-${shortHash(instanceId, 12)}-${direction}`;
}

/** True for every chain this prefix's agent creates, and no other. */
export function isOwnChain(prefix: string, chain: string): boolean {
  return chain.startsWith(`${prefix}-`);
}
