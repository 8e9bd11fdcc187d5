// The test network shared by the real-packet tests: random addresses inside
// the ranges the design allows for tests (two adjacent 10.x/24 guest subnets,
// a 172.29.x.0/30 link to a client namespace, a 198.18.x.0/24 elastic-IP pool),
// a client namespace routed to them through the host, and a teardown that
// removes everything such a test can have made, also after a failure.
//
// Network safety: the addresses are checked to be unused (covered only by
// the default route) before anything is made; the pool gets an unreachable
// route on the host, so a packet to it that is not DNATed dies here instead
// of following the default route; nothing NATs to the outside.
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Cidr, newId } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import { expect } from "vitest";
import { HostNetwork } from "../src/network/host-network.js";
import { bridgeName } from "../src/network/names.js";
import { LocalRunner } from "../src/runner/local.js";
import { freePort, quietLogger } from "./helpers.js";

const exec = promisify(execFile);

/** Runs argv; resolves with stdout, rejects on failure. */
export async function run(...argv: string[]): Promise<string> {
  return (await exec(argv[0]!, argv.slice(1), { encoding: "utf8" })).stdout;
}

/** Runs argv for cleanup: resolves with undefined on success, the error text on failure. */
export function attempt(...argv: string[]): Promise<string | undefined> {
  return run(...argv).then(
    () => undefined,
    (err: unknown) => String(err),
  );
}

export interface Fetched {
  ok: boolean;
  body: string;
  /** curl's exit status: 0 ok, 7 refused or unreachable, 22 HTTP error (-f), 28 timed out (dropped). */
  code: number;
}

/** An HTTP request from inside a namespace (undefined: from the host itself), with a short timeout (a dropped SYN costs 0.6 s). */
export async function fetchFrom(ns: string | undefined, url: string, ...curlArgs: string[]): Promise<Fetched> {
  const curl = ["curl", "-sS", "--connect-timeout", "0.6", "-m", "2", ...curlArgs, url];
  try {
    return { ok: true, body: await run(...(ns ? ["ip", "netns", "exec", ns, ...curl] : curl)), code: 0 };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { ok: false, body: e.stdout ?? "", code: typeof e.code === "number" ? e.code : -1 };
  }
}

/** Asserts that, seen from `ns` (or the host), `ip` is routed out of `dev`. */
export async function expectRoute(ns: string | undefined, ip: string, dev: string): Promise<void> {
  const argv = ns ? ["ip", "-n", ns, "route", "get", ip] : ["ip", "route", "get", ip];
  expect(await run(...argv)).toMatch(new RegExp(`\\bdev ${dev}\\b`));
}

const rand = (n: number) => Math.floor(Math.random() * n);

export class TestNetwork {
  readonly tag = rand(0xffff).toString(16).padStart(4, "0");
  /** Chain prefix of this test's HostNetwork: never the real agent's. */
  readonly prefix = `T${this.tag.toUpperCase()}`;
  readonly clientNs = `cirrus-${this.tag}-c`;
  readonly clientVeth = `cc${this.tag}h`;
  readonly subnetId = newId("subnet");
  readonly bridge = bridgeName(this.subnetId);
  private readonly second = rand(255);
  private readonly octets = `10.${64 + rand(128)}.${this.second}`;
  readonly subnet = `${this.octets}.0/24`;
  readonly gateway = `${this.octets}.1`;
  /** A second subnet (of the same VPC, say), for traffic between two of our bridges. */
  readonly subnet2Id = newId("subnet");
  readonly bridge2 = bridgeName(this.subnet2Id);
  private readonly octets2 = this.octets.replace(/\.\d+$/, `.${this.second + 1}`);
  readonly subnet2 = `${this.octets2}.0/24`;
  readonly gateway2 = `${this.octets2}.1`;
  // 172.29/16: away from the default VPC (172.31/16) and the e2e client links (172.30/16).
  private readonly link = `172.29.${rand(256)}`;
  readonly linkCidr = `${this.link}.0/30`;
  readonly clientIp = `${this.link}.2`;
  private readonly pool = `198.18.${rand(256)}`;
  readonly elasticIp = `${this.pool}.10`;
  readonly namespaces: string[] = [this.clientNs];
  readonly links: string[] = [this.clientVeth];
  metadataPort = 0;
  dir = "";
  network: HostNetwork | undefined;
  /** The user data the metadata service gets for each instance (the control plane's part, in these tests). */
  readonly userData = new Map<string, Buffer>();
  private revision = 0;
  private forwarding: string | undefined;
  private poolRouted = false;

  /** An address of the test subnet. */
  host(n: number): string {
    return `${this.octets}.${n}`;
  }

  /** An address of the second test subnet. */
  host2(n: number): string {
    return `${this.octets2}.${n}`;
  }

  /**
   * Checks the addresses are unused, then makes the HostNetwork (with a clock
   * the test may move), the client namespace and the pool's unreachable route.
   */
  /** Applies `network` (and the NICs of `instances`) as the next revision of the host state, as the control plane pushes it. */
  apply(network: agent.HostNetworkState, instances: agent.InstanceSpec[] = []) {
    return this.network!.applyHostState({ revision: ++this.revision, instances, network });
  }

  async setUp(now: () => number, orphanGraceMs: number, management: Cidr[] = []): Promise<HostNetwork> {
    for (const ip of [this.gateway, this.gateway2, `${this.link}.1`, this.elasticIp]) expect(await run("ip", "route", "get", ip)).toMatch(/^\S+ via /);
    const root = mkdtempSync("/tmp/cirrus-net-test-");
    chmodSync(root, 0o755);
    this.dir = join(root, "net");
    this.forwarding = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
    this.metadataPort = await freePort();
    this.network = new HostNetwork({
      runner: new LocalRunner(),
      dir: this.dir,
      prefix: this.prefix,
      metadata: { port: this.metadataPort, v2Required: false, userData: async (id) => this.userData.get(id) ?? Buffer.alloc(0) },
      orphanGraceMs,
      management,
      log: quietLogger(),
      now,
    });
    const ns = this.clientNs;
    await run("ip", "netns", "add", ns);
    await run("ip", "link", "add", this.clientVeth, "type", "veth", "peer", "name", "eth0", "netns", ns);
    await run("ip", "addr", "add", `${this.link}.1/30`, "dev", this.clientVeth);
    await run("ip", "link", "set", this.clientVeth, "up");
    await run("ip", "-n", ns, "addr", "add", `${this.clientIp}/30`, "dev", "eth0");
    await run("ip", "-n", ns, "link", "set", "lo", "up");
    await run("ip", "-n", ns, "link", "set", "eth0", "up");
    await run("ip", "-n", ns, "route", "add", this.subnet, "via", `${this.link}.1`);
    await run("ip", "-n", ns, "route", "add", "198.18.0.0/15", "via", `${this.link}.1`);
    await run("ip", "route", "add", "unreachable", `${this.pool}.0/24`);
    this.poolRouted = true;
    return this.network;
  }

  /** Removes everything setUp and the test made (namespaces, links, bridge, dnsmasq, our chains, the route), whatever state it is in. */
  async tearDown(): Promise<void> {
    await this.network?.close();
    for (const ns of this.namespaces) await attempt("ip", "netns", "del", ns);
    for (const link of this.links) await attempt("ip", "link", "del", link);
    if (this.poolRouted) await attempt("ip", "route", "del", "unreachable", `${this.pool}.0/24`);
    for (const bridge of [this.bridge, this.bridge2]) {
      // Normally gone already; after a failure there may be a dnsmasq to stop.
      if (this.dir) await attempt("sh", "-c", 'kill "$(cat "$1")"', "kill-dnsmasq", join(this.dir, `${bridge}.pid`));
      await attempt("ip", "link", "del", bridge);
    }
    for (const [tool, table] of [["iptables", "filter"], ["iptables", "nat"], ["ebtables", "filter"]] as const) {
      const saved = await run(`${tool}-save`, "-t", table);
      for (const m of saved.matchAll(new RegExp(`^-A (\\S+) -j (${this.prefix}-\\S+)$`, "gm"))) await attempt(tool, "-t", table, "-D", m[1]!, "-j", m[2]!);
      const chains = [...saved.matchAll(new RegExp(`^:(${this.prefix}-\\S+) `, "gm"))].map((m) => m[1]!);
      for (const c of chains) await attempt(tool, "-t", table, "-F", c);
      for (const c of chains) await attempt(tool, "-t", table, "-X", c);
    }
    // Test files run in parallel, and agents started by other tests need
    // forwarding too: restore the old value only when no other Cirrus
    // namespace or bridge is left on the machine.
    const othersNeedIt = (await run("ip", "netns", "list")).includes("cirrus-") || (await run("ip", "-d", "link", "show", "type", "bridge")).includes("alias cirrus:");
    if (this.forwarding !== undefined && !othersNeedIt) writeFileSync("/proc/sys/net/ipv4/ip_forward", this.forwarding);
    if (this.dir) rmSync(join(this.dir, ".."), { recursive: true, force: true });
  }
}
