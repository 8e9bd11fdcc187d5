// HostNetwork on this machine with real packets and no VM: network
// namespaces play guests A and B, attached to the test subnet's bridge by a
// veth whose host end is named like the instance's tap, and guest C on a
// second subnet's bridge; another namespace plays an outside client (see
// net-fixture.ts), routed to the subnet and the test elastic-IP pool through
// the host; one more, "outside", stands for the world beyond the host: the
// host reaches it through a veth that is not a Cirrus bridge, as it would
// its uplink.
//
// Network safety: every address used lives on interfaces this test creates;
// each destination is checked with `ip route get` before anything is sent;
// the elastic-IP pool gets an unreachable route on the host, so a packet
// that is not DNATed dies here instead of following the default route; no
// NAT to the outside is configured (outbound NAT stays off), and guests
// have routes only to the test's own networks. Namespaces,
// veths, the bridge, dnsmasq, our chains and the route are removed in
// afterAll, also after a failure. Requires root, iproute2, iptables,
// dnsmasq, busybox and curl.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { newId, parseCidr } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostNetwork } from "../src/network/host-network.js";
import { bridgeName, instanceChain, tapName } from "../src/network/names.js";
import { validateInterface, type ValidInterface } from "../src/network/state.js";
import { attempt, expectRoute, fetchFrom, run, TestNetwork } from "./net-fixture.js";

/** One DHCP exchange from the namespace's eth0; returns udhcpc's report (it writes to stderr). */
function dhcpLease(ns: string): Promise<string> {
  return run("ip", "netns", "exec", ns, "sh", "-c", "busybox udhcpc -i eth0 -n -q -t 5 -T 1 -s /bin/true 2>&1");
}

const net = new TestNetwork();
const NS = { a: `cirrus-${net.tag}-a`, b: `cirrus-${net.tag}-b`, c: `cirrus-${net.tag}-x`, client: net.clientNs };
/** The "outside": a namespace behind a veth of the host that is not a Cirrus bridge, on a /30 next to the client's. */
const LINK = net.linkCidr.replace(/\.0\/30$/, "");
const OUTSIDE = { ns: `cirrus-${net.tag}-o`, veth: `co${net.tag}h`, cidr: `${LINK}.4/30`, hostIp: `${LINK}.5`, ip: `${LINK}.6` };
/** More addresses of the outside namespace: one in a management range the agent is told to keep guests from, one link-local. */
const MANAGEMENT_IP = `${LINK}.9`;
const LINK_LOCAL_IP = "169.254.77.7";
const PREFIX = net.prefix;
const BRIDGE = net.bridge;
const GATEWAY = net.gateway;
const CLIENT_IP = net.clientIp;
const EIP = net.elasticIp;

const A = newId("i");
const B = newId("i");
const C = newId("i");
const nicOf = (privateIp: string, mac: string, second = false): ValidInterface =>
  validateInterface({ subnetId: second ? net.subnet2Id : net.subnetId, subnetCidr: second ? net.subnet2 : net.subnet, gatewayIp: second ? net.gateway2 : GATEWAY, privateIp, macAddress: mac });
const nics = { [A]: nicOf(net.host(10), "52:54:00:c1:00:0a"), [B]: nicOf(net.host(11), "52:54:00:c1:00:0b"), [C]: nicOf(net.host2(12), "52:54:00:c1:00:0c", true) };
const ipA = nics[A]!.privateIp;
const ipB = nics[B]!.privateIp;
const ipC = nics[C]!.privateIp;

function metadataOf(instanceId: string): agent.InstanceMetadata {
  return {
    instanceId,
    amiId: "ami-0123456789abcdef0",
    instanceType: "t3.micro",
    availabilityZone: "lab-1a",
    region: "lab-1",
    localIpv4: nics[instanceId]!.privateIp,
    publicIpv4: "",
    mac: nics[instanceId]!.mac,
    localHostname: `ip-${nics[instanceId]!.privateIp.replaceAll(".", "-")}`,
    reservationId: "r-0123456789abcdef0",
    securityGroups: ["default"],
    publicKeys: [],
  };
}

const tcp = (port: number, ...cidrs: string[]): agent.FirewallRule => ({ protocol: "tcp", fromPort: port, toPort: port, cidrs });

const allOut: agent.FirewallRule[] = [{ protocol: "all", fromPort: -1, toPort: -1, cidrs: ["0.0.0.0/0"] }];

type PerGuest = { a?: agent.FirewallRule[]; b?: agent.FirewallRule[]; c?: agent.FirewallRule[] };

/** The network state with these ingress rules, these elastic IPs and these egress rules (by default none at all). */
function state(ingress: PerGuest, elasticIps: agent.ElasticIpMapping[] = [], egress: PerGuest = {}): agent.HostNetworkState {
  return {
    firewalls: [
      { instanceId: A, ingress: ingress.a ?? [], egress: egress.a ?? [] },
      { instanceId: B, ingress: ingress.b ?? [], egress: egress.b ?? [] },
      { instanceId: C, ingress: ingress.c ?? [], egress: egress.c ?? [] },
    ],
    elasticIps,
    metadata: [metadataOf(A), metadataOf(B), metadataOf(C)],
  };
}

describe("HostNetwork with namespaces as guests (real packets)", () => {
  let network: HostNetwork;
  let now = Date.now();
  const servers: ChildProcess[] = [];
  const GRACE = 60_000;

  function serve(ns: string, port: number, text: string): void {
    const root = join(net.dir, `${ns}-${port}`);
    mkdirSync(root);
    writeFileSync(join(root, "index.html"), text);
    servers.push(spawn("ip", ["netns", "exec", ns, "busybox", "httpd", "-f", "-p", String(port), "-h", root], { stdio: "ignore" }));
  }

  async function addGuest(ns: string, instanceId: string): Promise<string> {
    const nic = nics[instanceId]!;
    net.namespaces.push(ns);
    net.links.push(tapName(instanceId));
    await run("ip", "netns", "add", ns);
    await run("ip", "link", "add", tapName(instanceId), "type", "veth", "peer", "name", "eth0", "netns", ns, "address", nic.mac);
    await run("ip", "link", "set", tapName(instanceId), "master", bridgeName(nic.subnetId), "up");
    await run("ip", "-n", ns, "link", "set", "lo", "up");
    await run("ip", "-n", ns, "link", "set", "eth0", "up");
    // The guest learns its address over DHCP, as a VM would: dnsmasq and the firewall's DHCP rules at work.
    const dhcp = await dhcpLease(ns);
    await run("ip", "-n", ns, "addr", "add", `${nic.privateIp}/24`, "dev", "eth0");
    // Only the routes the test needs, all via the gateway: the client, the outside, the other subnet, metadata. No default route.
    const other = nic.subnetId === net.subnetId ? net.subnet2 : net.subnet;
    for (const to of [net.linkCidr, OUTSIDE.cidr, other, "169.254.169.254/32", `${MANAGEMENT_IP}/32`, `${LINK_LOCAL_IP}/32`]) await run("ip", "-n", ns, "route", "add", to, "via", nic.gatewayIp);
    return dhcp;
  }

  /** The outside namespace: routes back to the subnets and the elastic-IP pool through the host, like a flat network beyond the uplink. */
  async function addOutside(): Promise<void> {
    // Unused so far: only the default route covers it.
    expect(await run("ip", "route", "get", OUTSIDE.hostIp)).toMatch(/^\S+ via /);
    net.namespaces.push(OUTSIDE.ns);
    net.links.push(OUTSIDE.veth);
    await run("ip", "netns", "add", OUTSIDE.ns);
    await run("ip", "link", "add", OUTSIDE.veth, "type", "veth", "peer", "name", "eth0", "netns", OUTSIDE.ns);
    await run("ip", "addr", "add", `${OUTSIDE.hostIp}/30`, "dev", OUTSIDE.veth);
    await run("ip", "link", "set", OUTSIDE.veth, "up");
    await run("ip", "-n", OUTSIDE.ns, "addr", "add", `${OUTSIDE.ip}/30`, "dev", "eth0");
    await run("ip", "-n", OUTSIDE.ns, "link", "set", "lo", "up");
    await run("ip", "-n", OUTSIDE.ns, "link", "set", "eth0", "up");
    for (const to of [net.subnet, net.subnet2, "198.18.0.0/15"]) await run("ip", "-n", OUTSIDE.ns, "route", "add", to, "via", OUTSIDE.hostIp);
    // Reached through the outside namespace; the routes go with its veth.
    for (const ip of [MANAGEMENT_IP, LINK_LOCAL_IP]) {
      expect(await run("ip", "route", "get", ip)).toMatch(/^\S+ via /);
      await run("ip", "-n", OUTSIDE.ns, "addr", "add", `${ip}/32`, "dev", "lo");
      await run("ip", "route", "add", `${ip}/32`, "via", OUTSIDE.ip);
    }
    // GET /cgi-bin/peer answers with the caller's address as the outside sees it.
    const root = join(net.dir, "outside-80");
    mkdirSync(join(root, "cgi-bin"), { recursive: true });
    writeFileSync(join(root, "index.html"), "outside\n");
    writeFileSync(join(root, "cgi-bin", "peer"), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n', { mode: 0o755 });
    servers.push(spawn("ip", ["netns", "exec", OUTSIDE.ns, "busybox", "httpd", "-f", "-p", "0.0.0.0:80", "-h", root], { stdio: "ignore" }));
  }

  /** Packets the egress guard of `bridge` has dropped so far. */
  async function guardDrops(bridge: string): Promise<number> {
    const line = (await run("iptables-save", "-c", "-t", "filter")).split("\n").find((l) => l.endsWith(`-A ${PREFIX}-FORWARD -i ${bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP`));
    return Number(/^\[(\d+):/.exec(line ?? "")?.[1] ?? NaN);
  }

  beforeAll(async () => {
    network = await net.setUp(() => now, GRACE, [parseCidr(`${MANAGEMENT_IP}/32`)!]);
    await network.attach(A, nics[A]!);
    await network.attach(B, nics[B]!);
    await network.attach(C, nics[C]!);
    await net.apply(state({}));
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) s.kill("SIGKILL");
    await net.tearDown();
  }, 60_000);

  it("creates the bridge with the gateway address and answers DHCP with each guest's address", async () => {
    await expectRoute(undefined, ipA, BRIDGE);
    expect(await addGuest(NS.a, A)).toContain(`lease of ${ipA} obtained from ${GATEWAY}`);
    expect(await addGuest(NS.b, B)).toContain(`lease of ${ipB} obtained from ${GATEWAY}`);
    await expectRoute(undefined, ipC, net.bridge2);
    expect(await addGuest(NS.c, C)).toContain(`lease of ${ipC} obtained from ${net.gateway2}`);
    serve(NS.a, 80, "guest-A\n");
    serve(NS.a, 8080, "guest-A-8080\n");
    serve(NS.b, 80, "guest-B\n");
    serve(NS.c, 80, "guest-C\n");
    serve(NS.client, 80, "client\n");
    await addOutside();
    await expectRoute(NS.client, ipA, "eth0");
    await expectRoute(NS.a, CLIENT_IP, "eth0");
  });

  it("drops the client without an ingress rule, admits it with one (stateful, with no egress rule), and drops it again once revoked", async () => {
    expect((await fetchFrom(NS.client, `http://${ipA}/`)).code).toBe(28);
    const started = Date.now();
    await net.apply(state({ a: [tcp(80, `${CLIENT_IP}/32`)] }));
    const applyMs = Date.now() - started;
    expect(applyMs).toBeLessThan(1000);
    expect(await fetchFrom(NS.client, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
    // Only port 80 of A, and only A.
    expect((await fetchFrom(NS.client, `http://${ipA}:8080/`)).code).toBe(28);
    expect((await fetchFrom(NS.client, `http://${ipB}/`)).code).toBe(28);
    await net.apply(state({}));
    expect((await fetchFrom(NS.client, `http://${ipA}/`)).code).toBe(28);
  });

  it("a rule it refuses costs only its own instance: the others' rules are in force, that one is shut", async () => {
    const refused: agent.FirewallRule = { protocol: "icmp", fromPort: -1, toPort: 5, cidrs: [`${CLIENT_IP}/32`] };
    await net.apply(state({ a: [tcp(80, `${CLIENT_IP}/32`)], b: [tcp(80, `${CLIENT_IP}/32`), refused] }));
    expect(await fetchFrom(NS.client, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
    expect((await fetchFrom(NS.client, `http://${ipB}/`)).code).toBe(28);
    await net.apply(state({ b: [tcp(80, `${CLIENT_IP}/32`)] }));
    expect(await fetchFrom(NS.client, `http://${ipB}/`)).toMatchObject({ ok: true, body: "guest-B\n" });
    await net.apply(state({}));
  });

  it("applies nothing when the rules are intact, and restores chains flushed by hand", async () => {
    const wanted = state({ a: [tcp(80, `${CLIENT_IP}/32`)] });
    await net.apply(wanted);
    const again = await net.apply(wanted);
    expect(again).toMatchObject({ filterChanged: false, natChanged: false, bridgeChanged: false, bridgesCreated: [], dhcpStarted: [] });

    await run("iptables", "-F", instanceChain(PREFIX, A, "IN"));
    expect((await fetchFrom(NS.client, `http://${ipA}/`)).ok).toBe(false);
    // What the reconcile loop does after each heartbeat.
    const repaired = await network.reconcile([A, B]);
    expect(repaired.filterChanged).toBe(true);
    expect(await fetchFrom(NS.client, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });

    // A state of an older revision arriving late (a slow push, an old heartbeat answer) does not win.
    expect(await network.applyHostState({ revision: 1, instances: [], network: state({}) })).toBeUndefined();
    expect((await network.reconcile([A, B])).filterChanged).toBe(false);
    expect((await fetchFrom(NS.client, `http://${ipA}/`)).ok).toBe(true);

    // The jump from FORWARD removed by hand: restored too.
    await run("iptables", "-D", "FORWARD", "-j", `${PREFIX}-FORWARD`);
    expect((await network.reconcile([A, B])).filterChanged).toBe(true);
    expect(await run("iptables-save", "-t", "filter")).toContain(`-A FORWARD -j ${PREFIX}-FORWARD`);
  });

  it("restarts a dnsmasq that died", async () => {
    await run("sh", "-c", 'kill "$(cat "$1")"', "kill-dnsmasq", join(net.dir, `${BRIDGE}.pid`));
    await new Promise((r) => setTimeout(r, 100));
    expect((await network.reconcile([A, B])).dhcpStarted).toEqual([BRIDGE]);
    expect(await dhcpLease(NS.a)).toContain(`lease of ${ipA}`);
  });

  it("filters guest-to-guest traffic on the bridge with the receiver's ingress rules", async () => {
    await expectRoute(NS.b, ipA, "eth0");
    const bOut = { b: allOut };
    await net.apply(state({}, [], bOut));
    expect((await fetchFrom(NS.b, `http://${ipA}/`)).code).toBe(28);
    await net.apply(state({ a: [tcp(80, `${ipB}/32`)] }, [], bOut));
    expect(await fetchFrom(NS.b, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
    // Both ends' rules apply: without B's egress rule, A's ingress rule is not enough.
    await net.apply(state({ a: [tcp(80, `${ipB}/32`)] }));
    expect((await fetchFrom(NS.b, `http://${ipA}/`)).code).toBe(28);
    // B's address does not open A to the client.
    expect((await fetchFrom(NS.client, `http://${ipA}/`)).code).toBe(28);
  });

  it("lets a guest open connections only where its egress rules allow", async () => {
    // With an elastic IP: without one, nothing a guest opens leaves through a non-Cirrus interface (next test).
    const eipA = [{ publicIp: EIP, privateIp: ipA, instanceId: A }];
    await expectRoute(NS.a, CLIENT_IP, "eth0");
    await net.apply(state({}, eipA));
    expect((await fetchFrom(NS.a, `http://${CLIENT_IP}/`)).code).toBe(28);
    await net.apply(state({}, eipA, { a: [tcp(80, net.linkCidr)] }));
    expect(await fetchFrom(NS.a, `http://${CLIENT_IP}/`)).toMatchObject({ ok: true, body: "client\n" });
  });

  it("drops connections a guest without an elastic IP opens through a non-Cirrus interface, not the replies to connections from there", async () => {
    await expectRoute(undefined, OUTSIDE.ip, OUTSIDE.veth);
    await expectRoute(NS.a, OUTSIDE.ip, "eth0");
    await expectRoute(NS.b, OUTSIDE.ip, "eth0");
    await expectRoute(OUTSIDE.ns, ipA, "eth0");
    const fromOutside = { a: [tcp(80, `${OUTSIDE.ip}/32`)] };
    const everywhere = { a: allOut, b: allOut };
    await net.apply(state(fromOutside, [], everywhere));
    // Egress rules allow everything, and the outside could answer the private address; still dropped, by the guard.
    const before = await guardDrops(BRIDGE);
    expect((await fetchFrom(NS.a, `http://${OUTSIDE.ip}/`)).code).toBe(28);
    expect(await guardDrops(BRIDGE)).toBeGreaterThan(before);
    // The outside opens a connection to A: A's replies pass.
    expect(await fetchFrom(OUTSIDE.ns, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });

    // With an elastic IP, A's connections leave translated to it; B (none) stays inside.
    await net.apply(state(fromOutside, [{ publicIp: EIP, privateIp: ipA, instanceId: A }], everywhere));
    const seen = await fetchFrom(NS.a, `http://${OUTSIDE.ip}/cgi-bin/peer`);
    expect(seen.ok).toBe(true);
    expect(seen.body.trim()).toBe(EIP);
    expect((await fetchFrom(NS.b, `http://${OUTSIDE.ip}/`)).code).toBe(28);
    await net.apply(state(fromOutside, [], everywhere));
    expect((await fetchFrom(NS.a, `http://${OUTSIDE.ip}/`)).code).toBe(28);
  });

  it("keeps guests from link-local addresses but the metadata service, and from management ranges, whatever their egress rules and elastic IP", async () => {
    const eipA = [{ publicIp: EIP, privateIp: ipA, instanceId: A }];
    await net.apply(state({}, eipA, { a: allOut }));
    // The outside is reachable, translated to the elastic IP...
    expect(await fetchFrom(NS.a, `http://${OUTSIDE.ip}/`)).toMatchObject({ ok: true, body: "outside\n" });
    // ...but not its link-local and management addresses, though the same server answers there.
    expect(await fetchFrom(OUTSIDE.ns, `http://${MANAGEMENT_IP}/`)).toMatchObject({ ok: true, body: "outside\n" });
    expect((await fetchFrom(NS.a, `http://${MANAGEMENT_IP}/`)).code).toBe(28);
    expect((await fetchFrom(NS.a, `http://${LINK_LOCAL_IP}/`)).code).toBe(28);
    // The metadata service still answers.
    expect((await fetchFrom(NS.a, "http://169.254.169.254/latest/meta-data/instance-id")).body).toBe(A);
    await net.apply(state({}));
  });

  it("passes what a process on the host itself sends to a guest through the guest's security group", async () => {
    await net.apply(state({}));
    expect((await fetchFrom(undefined, `http://${ipA}/`)).code).toBe(28);
    // The host reaches a guest from its gateway address: a rule for that address admits it, on that port only.
    await net.apply(state({ a: [tcp(80, `${GATEWAY}/32`)] }));
    expect(await fetchFrom(undefined, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
    expect((await fetchFrom(undefined, `http://${ipA}:8080/`)).code).toBe(28);
    expect((await fetchFrom(undefined, `http://${ipB}/`)).code).toBe(28);
    await net.apply(state({}));
  });

  describe("L2 isolation: a guest cannot pass itself off as a neighbour, serve DHCP to it, or reach it below IPv4", () => {
    const macOf = async (ip: string) => /lladdr (\S+)/.exec(await run("ip", "neigh", "show", ip, "dev", BRIDGE))?.[1];

    it("a guest that takes its neighbour's address and announces it gets nothing through: the host keeps the neighbour's MAC, and its traffic", async () => {
      await net.apply(state({ a: [tcp(80, `${CLIENT_IP}/32`)] }));
      expect(await fetchFrom(NS.client, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
      expect(await macOf(ipA)).toBe(nics[A]!.mac);
      await run("ip", "-n", NS.b, "addr", "add", `${ipA}/32`, "dev", "eth0");
      try {
        // Past the kernel's ARP lock time, B announces A's address as its own (gratuitous ARP), and sends from it.
        await new Promise((r) => setTimeout(r, 1500));
        await attempt("ip", "netns", "exec", NS.b, "busybox", "arping", "-U", "-c", "2", "-I", "eth0", "-s", ipA, ipA);
        expect(await macOf(ipA)).toBe(nics[A]!.mac);
        expect(await fetchFrom(NS.client, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
        expect((await fetchFrom(NS.b, `http://${CLIENT_IP}/`, "--interface", ipA)).ok).toBe(false);
        // Nor does it get A's metadata.
        expect((await fetchFrom(NS.b, "http://169.254.169.254/latest/meta-data/instance-id", "--interface", ipA)).body).not.toBe(A);
      } finally {
        await run("ip", "-n", NS.b, "addr", "del", `${ipA}/32`, "dev", "eth0");
      }
    });

    it("a guest cannot answer its neighbours as a DHCP server, even where their groups admit it", async () => {
      const udp = (from: number, to: number): agent.FirewallRule => ({ protocol: "udp", fromPort: from, toPort: to, cidrs: [net.subnet] });
      await net.apply(state({ a: [udp(68, 68), udp(6800, 6800)] }, [], { b: allOut }));
      const delivered = async (sourcePort: number, port: number) => {
        const listener = spawn("ip", ["netns", "exec", NS.a, "/usr/bin/python3", "-c",
          `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("0.0.0.0", ${port}))\ns.settimeout(2)\nprint("ready", flush=True)\nprint(s.recvfrom(100)[0].decode(), flush=True)`]);
        let out = "";
        listener.stdout.on("data", (d: Buffer) => (out += d.toString()));
        let gone = false;
        const exited = new Promise((r) => listener.once("exit", () => r((gone = true))));
        while (!out.includes("ready") && !gone) await new Promise((r) => setTimeout(r, 20));
        expect(out, "the listener started").toContain("ready");
        await run("ip", "netns", "exec", NS.b, "/usr/bin/python3", "-c",
          `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("${ipB}", ${sourcePort}))\ns.sendto(b"offer", ("${ipA}", ${port}))`);
        await exited;
        return out.includes("offer");
      };
      // The same datagram from any other port passes: only a DHCP server's is stopped.
      expect(await delivered(6700, 6800)).toBe(true);
      expect(await delivered(67, 68)).toBe(false);
      await net.apply(state({}));
    });

    it("a guest cannot reach its neighbour over IPv6 link-local, around the neighbour's security group", async () => {
      await net.apply(state({ a: [tcp(80, `${CLIENT_IP}/32`)] }, [], { b: allOut }));
      const linkLocal = /inet6 (fe80::\S+)\/64/.exec(await run("ip", "-n", NS.a, "-6", "addr", "show", "dev", "eth0", "scope", "link"))?.[1];
      expect(linkLocal).toBeDefined();
      // A itself answers on it (the address is real), but not to B.
      await run("ip", "netns", "exec", NS.a, "busybox", "ping", "-6", "-c", "1", "-W", "1", "-I", "eth0", linkLocal!);
      await expect(run("ip", "netns", "exec", NS.b, "busybox", "ping", "-6", "-c", "1", "-W", "2", "-I", "eth0", linkLocal!)).rejects.toThrow();
      await net.apply(state({}));
    });
  });

  it("lets guests on two of our bridges talk as their security groups allow, by private address even with an elastic IP", async () => {
    await expectRoute(undefined, ipC, net.bridge2);
    await expectRoute(NS.c, ipA, "eth0");
    await expectRoute(NS.a, ipC, "eth0");
    const both = { a: allOut, c: allOut };
    await net.apply(state({}, [], both));
    expect((await fetchFrom(NS.c, `http://${ipA}/`)).code).toBe(28);
    await net.apply(state({ a: [tcp(80, `${ipC}/32`)] }, [], both));
    expect(await fetchFrom(NS.c, `http://${ipA}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
    // C admits A's private address only: A's elastic IP must not be applied on the way.
    await net.apply(state({ c: [tcp(80, `${ipA}/32`)] }, [{ publicIp: EIP, privateIp: ipA, instanceId: A }], both));
    expect(await fetchFrom(NS.a, `http://${ipC}/`)).toMatchObject({ ok: true, body: "guest-C\n" });
    // Still only as the receiver's rules say.
    expect((await fetchFrom(NS.b, `http://${ipC}/`)).code).toBe(28);
    await net.apply(state({}));
  });

  it("routes an elastic IP to its instance, follows a remap, and stops when it is removed", async () => {
    await expectRoute(NS.client, EIP, "eth0");
    const open = { a: [tcp(80, `${CLIENT_IP}/32`)], b: [tcp(80, `${CLIENT_IP}/32`)] };
    const toA = state(open, [{ publicIp: EIP, privateIp: ipA, instanceId: A }]);
    expect((await net.apply(toA))!.natChanged).toBe(true);
    expect((await net.apply(toA))!.natChanged).toBe(false); // written as iptables-save prints it
    expect(await fetchFrom(NS.client, `http://${EIP}/`)).toMatchObject({ ok: true, body: "guest-A\n" });
    await net.apply(state(open, [{ publicIp: EIP, privateIp: ipB, instanceId: B }]));
    expect(await fetchFrom(NS.client, `http://${EIP}/`)).toMatchObject({ ok: true, body: "guest-B\n" });
    // Ingress rules apply to DNATed traffic too.
    await net.apply(state({ a: open.a }, [{ publicIp: EIP, privateIp: ipB, instanceId: B }]));
    expect((await fetchFrom(NS.client, `http://${EIP}/`)).code).toBe(28);
    await net.apply(state(open));
    expect((await fetchFrom(NS.client, `http://${EIP}/`)).ok).toBe(false);
  });

  it("serves each guest its own metadata at 169.254.169.254, and never another's", async () => {
    await net.apply(state({}));
    expect(await fetchFrom(NS.a, "http://169.254.169.254/latest/meta-data/instance-id")).toMatchObject({ ok: true, body: A });
    expect(await fetchFrom(NS.b, "http://169.254.169.254/latest/meta-data/instance-id")).toMatchObject({ ok: true, body: B });
    expect(await fetchFrom(NS.a, "http://169.254.169.254/latest/meta-data/local-ipv4")).toMatchObject({ ok: true, body: ipA });

    const token = await fetchFrom(NS.a, "http://169.254.169.254/latest/api/token", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60");
    expect(token.ok).toBe(true);
    expect(await fetchFrom(NS.a, "http://169.254.169.254/latest/meta-data/instance-id", "-H", `X-aws-ec2-metadata-token: ${token.body}`)).toMatchObject({ ok: true, body: A });
    const stolen = await fetchFrom(NS.b, "http://169.254.169.254/latest/meta-data/instance-id", "-f", "-H", `X-aws-ec2-metadata-token: ${token.body}`);
    expect(stolen.ok).toBe(false);
    expect(stolen.body).not.toContain(A);

    // B claiming A's address is dropped before it reaches the service.
    await run("ip", "-n", NS.b, "addr", "add", `${ipA}/32`, "dev", "eth0");
    try {
      const spoofed = await fetchFrom(NS.b, "http://169.254.169.254/latest/meta-data/instance-id", "--interface", ipA);
      expect(spoofed.ok).toBe(false);
      expect(spoofed.body).not.toContain(A);
    } finally {
      await run("ip", "-n", NS.b, "addr", "del", `${ipA}/32`, "dev", "eth0");
    }
    // Someone who is not a guest on this bridge learns nothing either.
    const outsider = await fetchFrom(NS.client, `http://${GATEWAY}:${net.metadataPort}/latest/meta-data/instance-id`);
    expect(outsider.body).not.toContain("i-");
  });

  it("removes an instance's chains on detach, and the bridge and its dnsmasq once empty past the grace period", async () => {
    await network.detach(A);
    await network.detach(B);
    await network.detach(C);
    const filter = await run("iptables-save", "-t", "filter");
    expect(filter).not.toContain(instanceChain(PREFIX, A, "IN"));
    expect(filter).not.toContain(instanceChain(PREFIX, B, "OUT"));
    expect((await network.reconcile([])).bridgesRemoved).toEqual([]);
    now += GRACE;
    expect((await network.reconcile([])).bridgesRemoved.sort()).toEqual([BRIDGE, net.bridge2].sort());
    expect(await attempt("ip", "link", "show", "dev", BRIDGE)).toBeDefined();
    expect(await attempt("ip", "link", "show", "dev", net.bridge2)).toBeDefined();
    expect(await attempt("test", "-e", join(net.dir, `${BRIDGE}.pid`))).toBeDefined();
  });
});
