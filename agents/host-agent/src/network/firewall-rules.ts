// Pure: the host's network plan → the iptables rules of our chains, written
// exactly as `iptables-save` prints them back, so that comparing the two
// tells whether anything needs re-applying.
//
// Layout (P = the agent's prefix, e.g. CIRRUS):
//
//  filter FORWARD → P-FORWARD
//    1. per bridge:   packets claiming a subnet address that do not come from its bridge → DROP
//    2. per instance: from its tap (bridged or routed)            → P-<id>-OUT (RETURN = allowed)
//    3. per instance: bridged to its tap, or routed to its address → P-<id>-IN (ACCEPT or DROP)
//    4. per bridge:   anything else into the bridge                 → DROP
//    5. per instance with an elastic IP: from its tap, having passed OUT → ACCEPT
//    6. per bridge:   egress guard: a connection opened from the bridge (not
//                     RELATED/ESTABLISHED) leaving through an interface that
//                     is not the outbound-NAT uplink                → DROP
//    7. per instance: from its tap, having passed OUT               → ACCEPT
//    8. per bridge:   anything else out of the bridge (unknown tap) → DROP
//  A packet routed by the host into a bridge has no physdev-out yet (the
//  bridge picks the port later), so step 3 also matches `-o bridge -d ip`;
//  guest-to-guest traffic on one bridge passes the sender's OUT chain and then
//  the receiver's IN chain. So does traffic between two of our bridges
//  (another subnet): steps 3 and 4 decide it, before the guard.
//
//  The egress guard (6): guests' private addresses mean nothing outside the
//  host, so a connection a guest opens may leave through a non-Cirrus
//  interface only with its source translated: to its elastic IP (5, SNAT in
//  P-POSTROUTING), or by the operator's outbound NAT (MASQUERADE on the
//  uplink). Everything else a guest would open to the outside is dropped;
//  replies to connections opened from outside (a client reaching a guest by
//  a route to its subnet) are ESTABLISHED and pass. What a guest sends to the
//  host itself (DHCP, metadata) goes through INPUT, not FORWARD.
//
//  Destinations no guest may open a connection to, whatever its egress
//  rules, its elastic IP or the outbound NAT (in each OUT chain, before the
//  egress rules): 169.254.0.0/16 but the metadata address (which never
//  reaches FORWARD: it is DNATed to the gateway), and the operator's
//  management ranges (the control plane, the agents' network).
//
//  filter INPUT → P-INPUT: guests reach DHCP always, and P-SERVICES
//  (metadata, ping of the gateway) only from their own tap with their own
//  address, so the metadata service can trust the source address.
//
//  filter OUTPUT → P-OUTPUT: what a process on the host itself sends to a
//  guest's address passes the guest's IN chain like any other traffic
//  (replies to the guest's own DHCP and metadata requests are ESTABLISHED,
//  or the DHCP reply the IN chain accepts from the gateway).
//
//  bridge (ebtables) filter FORWARD and INPUT → P-L2: what a guest's tap
//  puts on a bridge, below IP, whether bridged to a neighbour or to the
//  host: per instance P-<id>-L2 admits only frames from its own MAC; ARP
//  only for its own MAC and address (no taking a neighbour's address); IPv4
//  only from its own address (or 0.0.0.0 for a DHCP request), never from
//  a DHCP server's port (no serving neighbours); nothing else (IPv6, other
//  ethertypes: no way around the security groups). (Matching the other
//  ports of our bridges by bridge needs --logical-in, which nf_tables
//  kernels without nft_meta_bridge refuse; only our domains' taps are ports
//  of our bridges, and IPv4 from any other port is dropped by FORWARD.)
//
//  nat PREROUTING → P-METADATA (169.254.169.254:80 → gateway:port),
//  PREROUTING and OUTPUT → P-PREROUTING (elastic IP → private, DNAT),
//  POSTROUTING → P-POSTROUTING (private → elastic IP, SNAT; outbound NAT),
//  except into our bridges: another subnet sees a guest's private address.
import { cidrText, type Cidr } from "@cirrus/common";
import { instanceChain, mainChains } from "./names.js";
import type { ValidRule } from "./state.js";

export const METADATA_IP = "169.254.169.254";

export interface PlannedBridge {
  name: string;
  subnet: Cidr;
  gatewayIp: string;
}

export interface PlannedInstance {
  instanceId: string;
  bridge: string;
  tap: string;
  privateIp: string;
  /** Lowercase, as ebtables-save prints it. */
  mac: string;
  ingress: readonly ValidRule[];
  egress: readonly ValidRule[];
}

export interface PlannedElasticIp {
  publicIp: string;
  privateIp: string;
  /** The private address's subnet: traffic within it keeps its private source. */
  subnet: Cidr;
}

export interface FirewallPlan {
  prefix: string;
  bridges: readonly PlannedBridge[];
  instances: readonly PlannedInstance[];
  elasticIps: readonly PlannedElasticIp[];
  /** Port of the metadata service on each gateway; undefined: no metadata service. */
  metadataPort?: number;
  /** Uplink interface for MASQUERADE of guest traffic leaving the host; undefined: none. */
  outboundNat?: string;
  /** Management ranges no guest may open connections to (169.254.0.0/16 is always added). */
  management: readonly Cidr[];
}

/** Link-local: nothing there is a guest's business but the metadata service, which is DNATed before FORWARD. */
const LINK_LOCAL: Cidr = { network: "169.254.0.0", prefix: 16 };

/** A jump from a built-in chain into one of ours, placed first in the built-in chain. */
export interface Jump {
  from: string;
  to: string;
}

/** Our part of one table: chains in creation order, their rules, and the jumps into them. */
export interface TableRules {
  /** ipv4: iptables; bridge: ebtables (frames on our bridges, below IP). */
  family: "ipv4" | "bridge";
  table: "filter" | "nat";
  chains: Map<string, string[]>;
  jumps: Jump[];
}

const CONNTRACK_ESTABLISHED = "-m conntrack --ctstate RELATED,ESTABLISHED";
const CONNTRACK_OPENING = "-m conntrack ! --ctstate RELATED,ESTABLISHED";
const DHCP_REQUEST = "-p udp -m udp --sport 68 --dport 67";
const DHCP_REPLY = "-p udp -m udp --sport 67 --dport 68";

function host(ip: string): string {
  return `${ip}/32`;
}

/** The match part of one rule (iptables-save order: -s/-d, then -p and its match). */
function ruleMatch(rule: ValidRule, cidr: Cidr, direction: "-s" | "-d"): string {
  const parts: string[] = [];
  // 0.0.0.0/0 matches everything, and iptables-save leaves it out.
  if (cidr.prefix > 0) parts.push(direction, cidrText(cidr));
  if (rule.protocol === "tcp" || rule.protocol === "udp") {
    parts.push("-p", rule.protocol);
    if (rule.from !== undefined && rule.to !== undefined) {
      parts.push("-m", rule.protocol, "--dport", rule.from === rule.to ? String(rule.from) : `${rule.from}:${rule.to}`);
    }
  } else if (rule.protocol === "icmp") {
    parts.push("-p", "icmp");
    if (rule.from !== undefined) parts.push("-m", "icmp", "--icmp-type", rule.to === undefined ? String(rule.from) : `${rule.from}/${rule.to}`);
  }
  return parts.join(" ");
}

/** One line per (rule, cidr), in the order given: the allow list of a chain. */
function allowLines(chain: string, rules: readonly ValidRule[], direction: "-s" | "-d", verdict: "ACCEPT" | "RETURN"): string[] {
  return rules.flatMap((r) => r.cidrs.map((c) => [`-A ${chain}`, ruleMatch(r, c, direction), `-j ${verdict}`].filter(Boolean).join(" ")));
}

/** Postcondition: every chain named in a rule or jump is in `chains`, and rules only jump to chains of this table. */
export function filterRules(plan: FirewallPlan): TableRules {
  const main = mainChains(plan.prefix);
  const chains = new Map<string, string[]>();
  const fwd: string[] = [];
  const input: string[] = [];
  const services: string[] = [];
  const output: string[] = [];
  chains.set(main.forward, fwd);
  chains.set(main.input, input);
  chains.set(main.services, services);
  chains.set(main.output, output);
  const forbidden = [LINK_LOCAL, ...plan.management];
  const inChain = (i: PlannedInstance) => instanceChain(plan.prefix, i.instanceId, "IN");
  const outChain = (i: PlannedInstance) => instanceChain(plan.prefix, i.instanceId, "OUT");
  const gatewayOf = new Map(plan.bridges.map((b) => [b.name, b.gatewayIp]));

  for (const b of plan.bridges) fwd.push(`-A ${main.forward} -s ${cidrText(b.subnet)} ! -i ${b.name} -j DROP`);
  for (const i of plan.instances) fwd.push(`-A ${main.forward} -m physdev --physdev-in ${i.tap} -j ${outChain(i)}`);
  for (const i of plan.instances) {
    fwd.push(`-A ${main.forward} -m physdev --physdev-out ${i.tap} --physdev-is-bridged -j ${inChain(i)}`);
    fwd.push(`-A ${main.forward} -d ${host(i.privateIp)} -o ${i.bridge} -j ${inChain(i)}`);
  }
  for (const b of plan.bridges) fwd.push(`-A ${main.forward} -o ${b.name} -j DROP`);
  // Only routed traffic to a non-Cirrus interface is left from here on.
  const elastic = new Set(plan.elasticIps.map((e) => e.privateIp));
  const [sNat, unNat] = [plan.instances.filter((i) => elastic.has(i.privateIp)), plan.instances.filter((i) => !elastic.has(i.privateIp))];
  for (const i of sNat) fwd.push(`-A ${main.forward} -m physdev --physdev-in ${i.tap} -j ACCEPT`);
  const notUplink = plan.outboundNat ? ` ! -o ${plan.outboundNat}` : "";
  for (const b of plan.bridges) fwd.push(`-A ${main.forward} -i ${b.name}${notUplink} ${CONNTRACK_OPENING} -j DROP`);
  for (const i of unNat) fwd.push(`-A ${main.forward} -m physdev --physdev-in ${i.tap} -j ACCEPT`);
  for (const b of plan.bridges) fwd.push(`-A ${main.forward} -i ${b.name} -j DROP`);

  for (const i of plan.instances) {
    const gateway = gatewayOf.get(i.bridge);
    chains.set(inChain(i), [
      `-A ${inChain(i)} ${CONNTRACK_ESTABLISHED} -j ACCEPT`,
      ...(gateway ? [`-A ${inChain(i)} -s ${host(gateway)} ${DHCP_REPLY} -j ACCEPT`] : []),
      ...allowLines(inChain(i), i.ingress, "-s", "ACCEPT"),
      `-A ${inChain(i)} -j DROP`,
    ]);
    chains.set(outChain(i), [
      // DHCP discovery happens before the guest has an address.
      `-A ${outChain(i)} -s 0.0.0.0/32 ${DHCP_REQUEST} -j RETURN`,
      // Source check (EC2's default): a guest sends only as itself.
      `-A ${outChain(i)} ! -s ${host(i.privateIp)} -j DROP`,
      `-A ${outChain(i)} ${CONNTRACK_ESTABLISHED} -j RETURN`,
      `-A ${outChain(i)} ${DHCP_REQUEST} -j RETURN`,
      `-A ${outChain(i)} -d ${host(METADATA_IP)} -p tcp -m tcp --dport 80 -j RETURN`,
      ...forbidden.map((c) => `-A ${outChain(i)} -d ${cidrText(c)} -j DROP`),
      ...allowLines(outChain(i), i.egress, "-d", "RETURN"),
      `-A ${outChain(i)} -j DROP`,
    ]);
  }

  for (const i of plan.instances) output.push(`-A ${main.output} -d ${host(i.privateIp)} -o ${i.bridge} -j ${inChain(i)}`);

  for (const b of plan.bridges) {
    input.push(`-A ${main.input} -i ${b.name} ${DHCP_REQUEST} -j ACCEPT`);
    input.push(`-A ${main.input} -i ${b.name} ${CONNTRACK_ESTABLISHED} -j ACCEPT`);
  }
  for (const i of plan.instances) {
    const gateway = gatewayOf.get(i.bridge);
    if (gateway) input.push(`-A ${main.input} -s ${host(i.privateIp)} -d ${host(gateway)} -i ${i.bridge} -m physdev --physdev-in ${i.tap} -j ${main.services}`);
  }
  for (const b of plan.bridges) input.push(`-A ${main.input} -i ${b.name} -j DROP`);
  if (plan.metadataPort !== undefined) services.push(`-A ${main.services} -p tcp -m tcp --dport ${plan.metadataPort} -j ACCEPT`);
  services.push(`-A ${main.services} -p icmp -m icmp --icmp-type 8 -j ACCEPT`, `-A ${main.services} -j DROP`);

  return {
    family: "ipv4",
    table: "filter",
    chains,
    jumps: [
      { from: "FORWARD", to: main.forward },
      { from: "INPUT", to: main.input },
      { from: "OUTPUT", to: main.output },
    ],
  };
}

/** Postcondition: as filterRules, for the nat table. */
export function natRules(plan: FirewallPlan): TableRules {
  const main = mainChains(plan.prefix);
  const metadata: string[] = [];
  const pre: string[] = [];
  const post: string[] = [];
  if (plan.metadataPort !== undefined) {
    for (const b of plan.bridges) {
      metadata.push(`-A ${main.metadata} -d ${host(METADATA_IP)} -i ${b.name} -p tcp -m tcp --dport 80 -j DNAT --to-destination ${b.gatewayIp}:${plan.metadataPort}`);
    }
  }
  // Into one of our bridges (the same or another subnet) a guest keeps its private address, as within an EC2 VPC.
  for (const b of plan.bridges) post.push(`-A ${main.postrouting} -o ${b.name} -j RETURN`);
  for (const e of plan.elasticIps) {
    pre.push(`-A ${main.prerouting} -d ${host(e.publicIp)} -j DNAT --to-destination ${e.privateIp}`);
    post.push(`-A ${main.postrouting} -s ${host(e.privateIp)} ! -d ${cidrText(e.subnet)} -j SNAT --to-source ${e.publicIp}`);
  }
  // After the elastic-IP rules: an instance with an elastic IP leaves as that address.
  if (plan.outboundNat) {
    for (const b of plan.bridges) post.push(`-A ${main.postrouting} -s ${cidrText(b.subnet)} -o ${plan.outboundNat} -j MASQUERADE`);
  }
  return {
    family: "ipv4",
    table: "nat",
    chains: new Map([
      [main.metadata, metadata],
      [main.prerouting, pre],
      [main.postrouting, post],
    ]),
    jumps: [
      { from: "PREROUTING", to: main.metadata },
      { from: "PREROUTING", to: main.prerouting },
      { from: "OUTPUT", to: main.prerouting },
      { from: "POSTROUTING", to: main.postrouting },
    ],
  };
}

/** Postcondition: as filterRules, for the bridge family's filter table (ebtables). */
export function bridgeRules(plan: FirewallPlan): TableRules {
  const main = mainChains(plan.prefix);
  const l2: string[] = [];
  const chains = new Map<string, string[]>([[main.l2, l2]]);
  for (const i of plan.instances) {
    const chain = instanceChain(plan.prefix, i.instanceId, "L2");
    l2.push(`-A ${main.l2} -i ${i.tap} -j ${chain}`);
    chains.set(chain, [
      `-A ${chain} -s ! ${i.mac} -j DROP`,
      `-A ${chain} -p ARP --arp-mac-src ! ${i.mac} -j DROP`,
      `-A ${chain} -p ARP --arp-ip-src ! ${i.privateIp} -j DROP`,
      `-A ${chain} -p ARP -j RETURN`,
      `-A ${chain} -p IPv4 --ip-src 0.0.0.0 --ip-proto udp --ip-sport 68 --ip-dport 67 -j RETURN`,
      `-A ${chain} -p IPv4 --ip-src ! ${i.privateIp} -j DROP`,
      `-A ${chain} -p IPv4 --ip-proto udp --ip-sport 67 -j DROP`,
      `-A ${chain} -p IPv4 -j RETURN`,
      `-A ${chain} -j DROP`,
    ]);
  }
  return {
    family: "bridge",
    table: "filter",
    chains,
    jumps: [
      { from: "FORWARD", to: main.l2 },
      { from: "INPUT", to: main.l2 },
    ],
  };
}
