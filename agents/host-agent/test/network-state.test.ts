import type { agent } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { validateNetworkState } from "../src/network/state.js";
import { A, B } from "./helpers.js";

const rule = (protocol: string, fromPort: number, toPort: number, ...cidrs: string[]): agent.FirewallRule => ({ protocol, fromPort, toPort, cidrs });
const stateOf = (ingress: agent.FirewallRule[], more: Partial<agent.HostNetworkState> = {}): agent.HostNetworkState => ({
  firewalls: [{ instanceId: A, ingress, egress: [] }],
  elasticIps: [],
  metadata: [],
  ...more,
});

/** The one problem validating `s` reports; A's firewall (where there is one) is left out with it. */
function problem(s: agent.HostNetworkState): string {
  const { state, problems } = validateNetworkState(s);
  expect(problems).toHaveLength(1);
  expect(state.firewalls.has(A)).toBe(false);
  return problems[0]!.problem;
}

describe("validateNetworkState", () => {
  it("reads rules: port ranges, all ports, icmp type/code, all protocols, normalized CIDRs", () => {
    const { state: v, problems } = validateNetworkState(
      stateOf([rule("tcp", 22, 22, "10.0.0.5/24"), rule("udp", -1, -1, "0.0.0.0/0"), rule("tcp", 1000, 2000, "198.18.0.0/15"), rule("icmp", 8, -1, "10.0.0.0/8"), rule("icmp", 3, 4, "10.0.0.0/8"), rule("icmp", -1, -1, "10.0.0.0/8"), rule("all", 0, 0, "172.31.0.0/16")]),
    );
    expect(v.firewalls.get(A)!.ingress).toEqual([
      { protocol: "tcp", from: 22, to: 22, cidrs: [{ network: "10.0.0.0", prefix: 24 }] },
      { protocol: "udp", cidrs: [{ network: "0.0.0.0", prefix: 0 }] },
      { protocol: "tcp", from: 1000, to: 2000, cidrs: [{ network: "198.18.0.0", prefix: 15 }] },
      { protocol: "icmp", from: 8, to: undefined, cidrs: [{ network: "10.0.0.0", prefix: 8 }] },
      { protocol: "icmp", from: 3, to: 4, cidrs: [{ network: "10.0.0.0", prefix: 8 }] },
      { protocol: "icmp", from: undefined, to: undefined, cidrs: [{ network: "10.0.0.0", prefix: 8 }] },
      { protocol: "all", cidrs: [{ network: "172.31.0.0", prefix: 16 }] },
    ]);
    expect(problems).toEqual([]);
  });

  it("refuses malformed rules, ids, addresses and duplicates, naming the problem", () => {
    expect(problem(stateOf([rule("tcp", 22, 22, "10.0.0.0/8 -j ACCEPT")]))).toMatch(/not an IPv4 CIDR/);
    expect(problem(stateOf([rule("tcp", 22, 22, "10.0.0.0/8\n-A INPUT -j ACCEPT")]))).toMatch(/not an IPv4 CIDR/);
    expect(problem(stateOf([rule("sctp", 1, 1, "10.0.0.0/8")]))).toMatch(/protocol/);
    expect(problem(stateOf([rule("TCP", 1, 1, "10.0.0.0/8")]))).toMatch(/protocol/);
    expect(problem(stateOf([rule("tcp", 80, 22, "10.0.0.0/8")]))).toMatch(/runs backwards/);
    expect(problem(stateOf([rule("tcp", 1, 65536, "10.0.0.0/8")]))).toMatch(/ports/);
    expect(problem(stateOf([rule("tcp", -1, 80, "10.0.0.0/8")]))).toMatch(/ports/);
    expect(problem(stateOf([rule("icmp", -1, 4, "10.0.0.0/8")]))).toMatch(/ICMP code \(4\) needs an ICMP type/);
    expect(problem(stateOf([rule("icmp", 256, -1, "10.0.0.0/8")]))).toMatch(/ICMP type and code/);
    expect(problem({ ...stateOf([]), firewalls: [{ instanceId: "i-1;x", ingress: [], egress: [] }] })).toMatch(/not an instance id/);
    expect(problem({ ...stateOf([]), firewalls: [{ instanceId: A, ingress: [], egress: [] }, { instanceId: A, ingress: [], egress: [] }] })).toMatch(/twice/);
    const eip = { publicIp: "198.18.0.10", privateIp: "10.0.1.5", instanceId: A };
    expect(problem({ ...stateOf([], { elasticIps: [eip, { ...eip, instanceId: B }] }), firewalls: [] })).toMatch(/listed twice/);
    expect(problem({ ...stateOf([], { elasticIps: [{ ...eip, publicIp: "198.18.0.1/32" }] }), firewalls: [] })).toMatch(/not IPv4/);
  });

  it("a bad entry costs only its own instance: the other instances' firewalls, elastic IPs and metadata stay", () => {
    const eip = (instanceId: string, publicIp: string) => ({ publicIp, privateIp: "10.0.1.5", instanceId });
    const { state, problems } = validateNetworkState({
      firewalls: [
        { instanceId: A, ingress: [rule("tcp", 22, 22, "10.0.0.0/8"), rule("icmp", -1, 5, "10.0.0.0/8")], egress: [] },
        { instanceId: B, ingress: [rule("tcp", 80, 80, "0.0.0.0/0")], egress: [] },
      ],
      elasticIps: [eip(A, "198.18.0.10"), eip(B, "198.18.0.11"), eip(B, "not-an-ip")],
      metadata: [],
    });
    expect([...state.firewalls.keys()]).toEqual([B]);
    expect(state.elasticIps.map((e) => e.publicIp)).toEqual(["198.18.0.10", "198.18.0.11"]);
    expect(problems.map((p) => p.instanceId)).toEqual([A, B]);
    expect(problems[0]!.problem).toMatch(new RegExp(`${A} ingress\\[1\\]: an ICMP code \\(5\\) needs an ICMP type`));
  });
});
