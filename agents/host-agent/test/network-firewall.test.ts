import { describe, expect, it } from "vitest";
import { parseCidr } from "@cirrus/common";
import { bridgeRules, filterRules, natRules, type FirewallPlan } from "../src/network/firewall-rules.js";
import { parseSave, restoreScript } from "../src/network/iptables.js";
import { instanceChain, isOwnChain } from "../src/network/names.js";
import { A, B } from "./helpers.js";

const subnet = parseCidr("10.0.1.0/24")!;
const IN = instanceChain("CIRRUS", A, "IN");
const OUT = instanceChain("CIRRUS", A, "OUT");
const plan: FirewallPlan = {
  prefix: "CIRRUS",
  bridges: [{ name: "cb0000000000001", subnet, gatewayIp: "10.0.1.1" }],
  instances: [
    {
      instanceId: A,
      bridge: "cb0000000000001",
      tap: "ct0000000000001",
      privateIp: "10.0.1.5",
      mac: "52:54:00:00:01:05",
      ingress: [
        { protocol: "tcp", from: 22, to: 22, cidrs: [parseCidr("198.18.0.0/15")!, parseCidr("172.31.0.2/32")!] },
        { protocol: "icmp", from: 8, cidrs: [parseCidr("0.0.0.0/0")!] },
      ],
      egress: [{ protocol: "all", cidrs: [parseCidr("0.0.0.0/0")!] }],
    },
  ],
  elasticIps: [{ publicIp: "198.18.0.10", privateIp: "10.0.1.5", subnet }],
  metadataPort: 8775,
  management: [parseCidr("192.0.2.0/24")!],
};

describe("bridgeRules", () => {
  it("lets a guest's tap put on the bridge only frames from its own MAC, ARP and IPv4 as itself, no DHCP server, nothing else", () => {
    const t = bridgeRules(plan);
    const L2 = instanceChain("CIRRUS", A, "L2");
    expect(t.family).toBe("bridge");
    expect(t.jumps).toEqual([{ from: "FORWARD", to: "CIRRUS-L2" }, { from: "INPUT", to: "CIRRUS-L2" }]);
    expect(Object.fromEntries(t.chains)).toEqual({
      "CIRRUS-L2": [`-A CIRRUS-L2 -i ct0000000000001 -j ${L2}`],
      [L2]: [
        `-A ${L2} -s ! 52:54:00:00:01:05 -j DROP`,
        `-A ${L2} -p ARP --arp-mac-src ! 52:54:00:00:01:05 -j DROP`,
        `-A ${L2} -p ARP --arp-ip-src ! 10.0.1.5 -j DROP`,
        `-A ${L2} -p ARP -j RETURN`,
        `-A ${L2} -p IPv4 --ip-src 0.0.0.0 --ip-proto udp --ip-sport 68 --ip-dport 67 -j RETURN`,
        `-A ${L2} -p IPv4 --ip-src ! 10.0.1.5 -j DROP`,
        `-A ${L2} -p IPv4 --ip-proto udp --ip-sport 67 -j DROP`,
        `-A ${L2} -p IPv4 -j RETURN`,
        `-A ${L2} -j DROP`,
      ],
    });
  });
});

describe("filterRules", () => {
  it("writes the documented layout in iptables-save's own form", () => {
    const t = filterRules(plan);
    expect(t.jumps).toEqual([
      { from: "FORWARD", to: "CIRRUS-FORWARD" },
      { from: "INPUT", to: "CIRRUS-INPUT" },
      { from: "OUTPUT", to: "CIRRUS-OUTPUT" },
    ]);
    expect(Object.fromEntries(t.chains)).toEqual({
      "CIRRUS-FORWARD": [
        "-A CIRRUS-FORWARD -s 10.0.1.0/24 ! -i cb0000000000001 -j DROP",
        `-A CIRRUS-FORWARD -m physdev --physdev-in ct0000000000001 -j ${OUT}`,
        `-A CIRRUS-FORWARD -m physdev --physdev-out ct0000000000001 --physdev-is-bridged -j ${IN}`,
        `-A CIRRUS-FORWARD -d 10.0.1.5/32 -o cb0000000000001 -j ${IN}`,
        "-A CIRRUS-FORWARD -o cb0000000000001 -j DROP",
        // A has an elastic IP: what it opens leaves SNATed, before the egress guard.
        "-A CIRRUS-FORWARD -m physdev --physdev-in ct0000000000001 -j ACCEPT",
        "-A CIRRUS-FORWARD -i cb0000000000001 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP",
        "-A CIRRUS-FORWARD -i cb0000000000001 -j DROP",
      ],
      "CIRRUS-INPUT": [
        "-A CIRRUS-INPUT -i cb0000000000001 -p udp -m udp --sport 68 --dport 67 -j ACCEPT",
        "-A CIRRUS-INPUT -i cb0000000000001 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A CIRRUS-INPUT -s 10.0.1.5/32 -d 10.0.1.1/32 -i cb0000000000001 -m physdev --physdev-in ct0000000000001 -j CIRRUS-SERVICES",
        "-A CIRRUS-INPUT -i cb0000000000001 -j DROP",
      ],
      // The host's own traffic to a guest passes the guest's IN chain.
      "CIRRUS-OUTPUT": [`-A CIRRUS-OUTPUT -d 10.0.1.5/32 -o cb0000000000001 -j ${IN}`],
      "CIRRUS-SERVICES": [
        "-A CIRRUS-SERVICES -p tcp -m tcp --dport 8775 -j ACCEPT",
        "-A CIRRUS-SERVICES -p icmp -m icmp --icmp-type 8 -j ACCEPT",
        "-A CIRRUS-SERVICES -j DROP",
      ],
      [IN]: [
        `-A ${IN} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
        `-A ${IN} -s 10.0.1.1/32 -p udp -m udp --sport 67 --dport 68 -j ACCEPT`,
        `-A ${IN} -s 198.18.0.0/15 -p tcp -m tcp --dport 22 -j ACCEPT`,
        `-A ${IN} -s 172.31.0.2/32 -p tcp -m tcp --dport 22 -j ACCEPT`,
        `-A ${IN} -p icmp -m icmp --icmp-type 8 -j ACCEPT`,
        `-A ${IN} -j DROP`,
      ],
      [OUT]: [
        `-A ${OUT} -s 0.0.0.0/32 -p udp -m udp --sport 68 --dport 67 -j RETURN`,
        `-A ${OUT} ! -s 10.0.1.5/32 -j DROP`,
        `-A ${OUT} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
        `-A ${OUT} -p udp -m udp --sport 68 --dport 67 -j RETURN`,
        `-A ${OUT} -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j RETURN`,
        // Closed whatever the egress rules: link-local (the metadata service is DNATed before FORWARD) and the management ranges.
        `-A ${OUT} -d 169.254.0.0/16 -j DROP`,
        `-A ${OUT} -d 192.0.2.0/24 -j DROP`,
        `-A ${OUT} -j RETURN`,
        `-A ${OUT} -j DROP`,
      ],
    });
  });

  it("writes port ranges and icmp codes as iptables-save does, and no rule for a rule without CIDRs", () => {
    const t = filterRules({
      ...plan,
      instances: [{ ...plan.instances[0]!, ingress: [{ protocol: "udp", from: 1000, to: 2000, cidrs: [subnet] }, { protocol: "icmp", from: 3, to: 4, cidrs: [subnet] }, { protocol: "tcp", cidrs: [] }] }],
    });
    expect(t.chains.get(IN)).toContain(`-A ${IN} -s 10.0.1.0/24 -p udp -m udp --dport 1000:2000 -j ACCEPT`);
    expect(t.chains.get(IN)).toContain(`-A ${IN} -s 10.0.1.0/24 -p icmp -m icmp --icmp-type 3/4 -j ACCEPT`);
    expect(t.chains.get(IN)).toHaveLength(5);
  });

  it("leaves out the metadata port when there is no metadata service", () => {
    expect(filterRules({ ...plan, metadataPort: undefined }).chains.get("CIRRUS-SERVICES")).toEqual(["-A CIRRUS-SERVICES -p icmp -m icmp --icmp-type 8 -j ACCEPT", "-A CIRRUS-SERVICES -j DROP"]);
  });

  describe("egress guard", () => {
    const subnet2 = parseCidr("10.0.2.0/24")!;
    const two: FirewallPlan = {
      ...plan,
      bridges: [...plan.bridges, { name: "cb0000000000002", subnet: subnet2, gatewayIp: "10.0.2.1" }],
      instances: [...plan.instances, { instanceId: B, bridge: "cb0000000000002", tap: "ct0000000000002", privateIp: "10.0.2.7", mac: "52:54:00:00:02:07", ingress: [], egress: [{ protocol: "all", cidrs: [parseCidr("0.0.0.0/0")!] }] }],
    };
    const forward = (p: FirewallPlan) => filterRules(p).chains.get("CIRRUS-FORWARD")!;
    const index = (rules: string[], line: string) => {
      const at = rules.indexOf(line);
      expect(at, line).toBeGreaterThanOrEqual(0);
      return at;
    };

    it("drops what a guest without an elastic IP opens to a non-Cirrus interface, after it passed its OUT chain, and lets replies through", () => {
      const rules = forward(two);
      const guards = ["cb0000000000001", "cb0000000000002"].map((b) => index(rules, `-A CIRRUS-FORWARD -i ${b} -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP`));
      // A (elastic IP) is accepted before the guard, B after it (so only its replies get there).
      expect(index(rules, "-A CIRRUS-FORWARD -m physdev --physdev-in ct0000000000001 -j ACCEPT")).toBeLessThan(Math.min(...guards));
      expect(index(rules, "-A CIRRUS-FORWARD -m physdev --physdev-in ct0000000000002 -j ACCEPT")).toBeGreaterThan(Math.max(...guards));
      // Both pass their OUT chain first.
      expect(index(rules, `-A CIRRUS-FORWARD -m physdev --physdev-in ct0000000000002 -j ${instanceChain("CIRRUS", B, "OUT")}`)).toBeLessThan(Math.min(...guards));
    });

    it("leaves traffic between two of our bridges to the security groups: each destination's IN chain and the bridges' DROP come first", () => {
      const rules = forward(two);
      const guard = index(rules, "-A CIRRUS-FORWARD -i cb0000000000002 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP");
      expect(index(rules, `-A CIRRUS-FORWARD -d 10.0.1.5/32 -o cb0000000000001 -j ${IN}`)).toBeLessThan(guard);
      expect(index(rules, `-A CIRRUS-FORWARD -d 10.0.2.7/32 -o cb0000000000002 -j ${instanceChain("CIRRUS", B, "IN")}`)).toBeLessThan(guard);
      expect(index(rules, "-A CIRRUS-FORWARD -o cb0000000000002 -j DROP")).toBeLessThan(guard);
    });

    it("with outbound NAT, lets connections out through the uplink only", () => {
      const rules = forward({ ...two, outboundNat: "eth1" });
      expect(rules).toContain("-A CIRRUS-FORWARD -i cb0000000000001 ! -o eth1 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP");
      expect(rules.filter((r) => r.includes("--ctstate RELATED,ESTABLISHED -j DROP"))).toHaveLength(2);
      expect(rules.some((r) => / -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP$/.test(r) && !r.includes("! -o eth1"))).toBe(false);
    });

    it("guards the bridges of a host without instances too", () => {
      expect(forward({ ...plan, instances: [], elasticIps: [] })).toEqual([
        "-A CIRRUS-FORWARD -s 10.0.1.0/24 ! -i cb0000000000001 -j DROP",
        "-A CIRRUS-FORWARD -o cb0000000000001 -j DROP",
        "-A CIRRUS-FORWARD -i cb0000000000001 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP",
        "-A CIRRUS-FORWARD -i cb0000000000001 -j DROP",
      ]);
    });

    it("does not touch what guests send to the host itself", () => {
      expect(filterRules(two).chains.get("CIRRUS-INPUT")!.some((r) => r.includes("ctstate RELATED,ESTABLISHED -j DROP"))).toBe(false);
    });
  });

  it("keeps every rule within its own chains", () => {
    const t = filterRules(plan);
    for (const [chain, rules] of t.chains) {
      for (const r of rules) {
        expect(r.startsWith(`-A ${chain} `)).toBe(true);
        const target = / -j (\S+)/.exec(r)![1]!;
        if (isOwnChain("CIRRUS", target)) expect(t.chains.has(target)).toBe(true);
      }
    }
  });
});

describe("natRules", () => {
  it("maps the metadata address per bridge and each elastic IP both ways", () => {
    const t = natRules(plan);
    expect(t.jumps).toEqual([
      { from: "PREROUTING", to: "CIRRUS-METADATA" },
      { from: "PREROUTING", to: "CIRRUS-PREROUTING" },
      { from: "OUTPUT", to: "CIRRUS-PREROUTING" },
      { from: "POSTROUTING", to: "CIRRUS-POSTROUTING" },
    ]);
    expect(Object.fromEntries(t.chains)).toEqual({
      "CIRRUS-METADATA": ["-A CIRRUS-METADATA -d 169.254.169.254/32 -i cb0000000000001 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.1.1:8775"],
      "CIRRUS-PREROUTING": ["-A CIRRUS-PREROUTING -d 198.18.0.10/32 -j DNAT --to-destination 10.0.1.5"],
      "CIRRUS-POSTROUTING": ["-A CIRRUS-POSTROUTING -o cb0000000000001 -j RETURN", "-A CIRRUS-POSTROUTING -s 10.0.1.5/32 ! -d 10.0.1.0/24 -j SNAT --to-source 198.18.0.10"],
    });
  });

  it("never translates traffic into one of our bridges, whichever subnet it comes from", () => {
    const two = { ...plan, bridges: [...plan.bridges, { name: "cb0000000000002", subnet: parseCidr("10.0.2.0/24")!, gatewayIp: "10.0.2.1" }] };
    expect(natRules(two).chains.get("CIRRUS-POSTROUTING")!.slice(0, 2)).toEqual(["-A CIRRUS-POSTROUTING -o cb0000000000001 -j RETURN", "-A CIRRUS-POSTROUTING -o cb0000000000002 -j RETURN"]);
  });

  it("adds outbound NAT after the elastic-IP SNAT only when configured", () => {
    expect(natRules({ ...plan, outboundNat: "eth1" }).chains.get("CIRRUS-POSTROUTING")).toEqual([
      "-A CIRRUS-POSTROUTING -o cb0000000000001 -j RETURN",
      "-A CIRRUS-POSTROUTING -s 10.0.1.5/32 ! -d 10.0.1.0/24 -j SNAT --to-source 198.18.0.10",
      "-A CIRRUS-POSTROUTING -s 10.0.1.0/24 -o eth1 -j MASQUERADE",
    ]);
  });
});

const SAVED = `# Generated by iptables-save v1.8.9 (nf_tables) on Mon Nov 23 01:42:10 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CIRRUS-FORWARD - [0:0]
:CIRRUS-OLD-IN - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j CIRRUS-FORWARD
-A FORWARD -j DOCKER-USER
-A FORWARD -i eth0 -j CIRRUS-FORWARD
-A CIRRUS-FORWARD -i cb0000000000001  -j DROP
-A CIRRUS-OLD-IN -j DROP
-A DOCKER-USER -j RETURN
COMMIT
`;

describe("parseSave and restoreScript", () => {
  const isOwn = (c: string) => isOwnChain("CIRRUS", c);

  it("extracts only our chains, their rules and the plain jumps into them", () => {
    const saved = parseSave(SAVED, isOwn);
    expect(Object.fromEntries(saved.chains)).toEqual({
      "CIRRUS-FORWARD": ["-A CIRRUS-FORWARD -i cb0000000000001 -j DROP"],
      "CIRRUS-OLD-IN": ["-A CIRRUS-OLD-IN -j DROP"],
    });
    expect([...saved.jumps]).toEqual(["FORWARD>CIRRUS-FORWARD"]);
  });

  it("is undefined when our chains already hold exactly what is wanted", () => {
    const wanted = filterRules(plan);
    const lines = ["*filter", ...[...wanted.chains.keys()].map((c) => `:${c} - [0:0]`), ...wanted.jumps.map((j) => `-A ${j.from} -j ${j.to}`), ...[...wanted.chains.values()].flat(), "COMMIT"];
    expect(restoreScript(wanted, parseSave(lines.join("\n"), isOwn))).toBeUndefined();
  });

  it("refills every wanted chain, adds missing jumps at the top, and removes stale chains with their jumps", () => {
    const wanted = { family: "ipv4" as const, table: "filter" as const, chains: new Map([["CIRRUS-FORWARD", ["-A CIRRUS-FORWARD -o cb0000000000001 -j DROP"]], ["CIRRUS-INPUT", []]]), jumps: [{ from: "FORWARD", to: "CIRRUS-FORWARD" }, { from: "INPUT", to: "CIRRUS-INPUT" }] };
    const saved = parseSave(`${SAVED.replace("COMMIT", "-A INPUT -j CIRRUS-OLD-IN\nCOMMIT")}`, isOwn);
    expect(restoreScript(wanted, saved)).toBe(
      [
        "*filter",
        ":CIRRUS-FORWARD - [0:0]",
        ":CIRRUS-INPUT - [0:0]",
        ":CIRRUS-OLD-IN - [0:0]",
        "-A CIRRUS-FORWARD -o cb0000000000001 -j DROP",
        "-I INPUT 1 -j CIRRUS-INPUT",
        "-D INPUT -j CIRRUS-OLD-IN",
        "-X CIRRUS-OLD-IN",
        "COMMIT",
        "",
      ].join("\n"),
    );
  });
});
