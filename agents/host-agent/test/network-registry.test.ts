import { describe, expect, it } from "vitest";
import { parseBridges, parseLinks } from "../src/network/bridges.js";
import { dnsmasqArgv, hostsFile } from "../src/network/dhcp.js";
import { InterfaceRegistry } from "../src/network/registry.js";
import { validateInterface, type ValidInterface } from "../src/network/state.js";
import { A, B, C } from "./helpers.js";

const S1 = "subnet-0000000000000000a";
const S2 = "subnet-0000000000000000b";
const nic = (subnetId: string, cidr: string, gw: string, ip: string, mac: string): ValidInterface =>
  validateInterface({ subnetId, subnetCidr: cidr, gatewayIp: gw, privateIp: ip, macAddress: mac });

describe("InterfaceRegistry", () => {
  it("records NICs, displaces a leftover holding the same address, and refuses conflicting subnets", () => {
    const r = new InterfaceRegistry(() => 0);
    expect(r.set(A, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0a"))).toEqual([]);
    expect(r.changed).toBe(true);
    expect(r.set(B, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0b"))).toEqual([A]);
    expect(r.all().map((n) => n.instanceId)).toEqual([B]);
    expect(() => r.set(C, nic(S1, "10.0.0.0/16", "10.0.0.1", "10.0.1.9", "52:54:00:00:00:0c"))).toThrow(/subnet-0000000000000000a is 10.0.1.0\/24/);
    expect(() => r.set(C, nic(S2, "10.0.0.0/16", "10.0.0.1", "10.0.2.9", "52:54:00:00:00:0c"))).toThrow(/overlaps/);
    r.set(C, nic(S2, "10.0.2.0/24", "10.0.2.1", "10.0.2.9", "52:54:00:00:00:0c"));
    expect(r.all()).toHaveLength(2);
  });

  it("forgets NICs not seen for the grace period", () => {
    let now = 0;
    const r = new InterfaceRegistry(() => now);
    r.set(A, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0a"));
    r.set(B, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.6", "52:54:00:00:00:0b"));
    now = 50;
    r.touch([B, C]);
    now = 100;
    expect(r.prune(100)).toEqual([]);
    now = 101;
    expect(r.prune(100)).toEqual([A]);
    expect(r.all().map((n) => n.instanceId)).toEqual([B]);
  });

  it("never drops the NIC of an instance whose domain exists: a NIC claiming its address or MAC is refused, and pruning passes it by", () => {
    let now = 0;
    const r = new InterfaceRegistry(() => now);
    r.set(A, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0a"));
    r.domainsAre([A]);
    expect(() => r.set(B, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0b"))).toThrow(new RegExp(`belongs to ${A}, whose domain exists`));
    expect(() => r.set(B, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.6", "52:54:00:00:00:0a"))).toThrow(/whose domain exists/);
    now = 1000;
    expect(r.prune(100)).toEqual([]);
    expect(r.all().map((n) => n.instanceId)).toEqual([A]);
    // Once its domain is gone, A is a leftover like any other.
    r.domainsAre([]);
    expect(r.set(B, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0b"))).toEqual([A]);
  });

  it("round-trips through its saved form and drops entries that fail validation", () => {
    const r = new InterfaceRegistry();
    r.set(A, nic(S1, "10.0.1.0/24", "10.0.1.1", "10.0.1.5", "52:54:00:00:00:0a"));
    const text = r.serialize();
    expect(r.changed).toBe(true);
    r.markSaved();
    expect(r.changed).toBe(false);
    const copy = new InterfaceRegistry();
    expect(copy.load(text)).toEqual([]);
    expect(copy.all()).toEqual(r.all());
    expect(copy.changed).toBe(false);
    const tampered = JSON.stringify({ interfaces: [{ ...JSON.parse(text).interfaces[0], privateIp: "10.0.1.5 -j ACCEPT" }, { instanceId: "i-x" }] });
    const problems = new InterfaceRegistry().load(tampered);
    expect(problems).toHaveLength(2);
  });
});

describe("DHCP files", () => {
  it("writes one sorted mac,ip line per lease", () => {
    expect(hostsFile([{ mac: "52:54:00:00:00:0b", ip: "10.0.1.6" }, { mac: "52:54:00:00:00:0a", ip: "10.0.1.5" }])).toBe("52:54:00:00:00:0a,10.0.1.5\n52:54:00:00:00:0b,10.0.1.6\n");
    expect(hostsFile([])).toBe("");
  });

  it("runs dnsmasq on one bridge, without DNS, with static leases and the gateway as router", () => {
    const files = { hosts: "/n/cb1.hosts", leases: "/n/cb1.leases", pid: "/n/cb1.pid", log: "/n/cb1.log" };
    const argv = dnsmasqArgv({ name: "cb1", subnetId: S1, subnet: { network: "10.0.1.0", prefix: 24 }, gatewayIp: "10.0.1.1" }, files);
    expect(argv).toEqual(
      expect.arrayContaining([
        "--port=0",
        "--bind-interfaces",
        "--interface=cb1",
        "--dhcp-range=10.0.1.0,static,255.255.255.0,12h",
        "--dhcp-hostsfile=/n/cb1.hosts",
        "--dhcp-option=option:router,10.0.1.1",
        "--dhcp-leasefile=/n/cb1.leases",
        "--pid-file=/n/cb1.pid",
      ]),
    );
    expect(argv[0]).toBe("dnsmasq");
  });
});

describe("parseBridges", () => {
  it("finds bridges named like ours, and tells ours from another agent's by the alias", () => {
    const json = JSON.stringify([
      { ifname: "cb0123456789abc", ifalias: `cirrus:CIRRUS:${S1}`, flags: ["BROADCAST", "UP"], addr_info: [{ family: "inet", local: "10.0.1.1", prefixlen: 24 }, { family: "inet6", local: "fe80::1", prefixlen: 64 }] },
      { ifname: "cb0123456789abd", ifalias: `cirrus:OTHER:${S2}`, flags: [], addr_info: [] },
      { ifname: "cb0123456789abe", flags: [], addr_info: [] },
      { ifname: "virbr0", flags: ["UP"], addr_info: [] },
    ]);
    expect(parseBridges(json, "CIRRUS")).toEqual([
      { name: "cb0123456789abc", subnetId: S1, foreign: false, addresses: ["10.0.1.1/24"], up: true },
      { name: "cb0123456789abd", subnetId: undefined, foreign: true, addresses: [], up: false },
      { name: "cb0123456789abe", subnetId: undefined, foreign: false, addresses: [], up: false },
    ]);
    expect(parseBridges("", "CIRRUS")).toEqual([]);
  });
});

describe("parseLinks", () => {
  it("reads each interface's master and whether it is up from `ip -j link show`", () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: "lo", flags: ["LOOPBACK", "UP", "LOWER_UP"] },
      { ifindex: 7, ifname: "ct0123456789abc", flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], master: "cb0123456789abc", operstate: "UNKNOWN" },
      { ifindex: 8, ifname: "ct0123456789abd", flags: ["BROADCAST", "MULTICAST"], operstate: "DOWN" },
      { ifindex: 9 },
    ]);
    expect([...parseLinks(json)]).toEqual([
      ["lo", { master: undefined, up: true }],
      ["ct0123456789abc", { master: "cb0123456789abc", up: true }],
      ["ct0123456789abd", { master: undefined, up: false }],
    ]);
    expect(parseLinks("").size).toBe(0);
  });
});
