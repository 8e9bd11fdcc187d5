// bench/launch/agent.ts: how long the host agent's CreateInstance takes (the
// host side of a launch), against the physical limit measured in the same
// run: `qemu-img create` of the overlay plus `virsh create` of the very same
// domain XML, done by hand.
//
// The agent is the real one as production runs it: `node
// agents/host-agent/dist/main.js` (build it first), libvirt driver, host
// networking on, registered with a minimal HostControl served from here
// (no API, queue or worker). Each agent launch is what the control plane
// sends: ApplyNetworkState with the new instance's firewall and metadata
// (as the API's notifier does after the RunInstances commit; not timed),
// then CreateInstance for the test AMI with a NIC (timed, over gRPC, until
// the agent answers RUNNING). The raw launch uses the agent's own domain
// XML (`virsh dumpxml --inactive` of the warm-up instance) with its name,
// uuid, disk, console log, tap and MAC replaced, on the same bridge.
//
// Fairness: round 0 is a warm-up for both sides and not counted; the side
// that goes first alternates; each side's domain is gone before the other
// side runs, so neither competes with the other's booting guest.
//
// The agent logs every command each CreateInstance ran with its duration
// (CIRRUS_LOG_LEVEL=debug); the per-phase and per-command medians printed
// at the end come from there.
//
// Usage (as root, host prepared by deploy/prepare-host.sh, agent built):
//   npm run -w @cirrus/bench launch:agent -- [rounds] [--no-nic] [--trace] [--heartbeat-ms N]
// rounds: counted rounds (default 10). --no-nic: instances without a NIC.
// --trace: print every round's commands. --heartbeat-ms: the agent's
// heartbeat interval (default 3600000: one heartbeat at start, so the
// reconcile loop never runs during a launch; 5000 is production's).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { Metadata, Server, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { clusterChannelCredentials, clusterServerCredentials, CONTROL_PLANE_CN, createCa, csrPublicKey, issueCertificate, issueCredential } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { commandLabel, median, option, rawLaunch, report, rewriteXml, roundsOf, summarize, virsh, runRounds } from "../src/stats.js";

const exec = promisify(execFile);
const argv = process.argv.slice(2);
const ROUNDS = roundsOf(argv, 10);
const WITH_NIC = !argv.includes("--no-nic");
const TRACE = argv.includes("--trace");
const HEARTBEAT_MS = Number(option(argv, "heartbeat-ms", "3600000"));
const REPO = new URL("../../", import.meta.url).pathname;
const AMI_DIR = process.env.CIRRUS_TEST_AMI_DIR ?? "/var/lib/cirrus/images/test-ami";
const TOKEN = randomBytes(16).toString("hex");
const SECRET = randomBytes(24).toString("hex");
const HOST_ID = `h-${randomBytes(9).toString("hex").slice(0, 17)}`;

const newId = (prefix: string) => `${prefix}-${randomBytes(9).toString("hex").slice(0, 17)}`;
/** As the control plane's macFor: 52:54:00 + the address's last three octets. */
const macFor = (ip: string) => `52:54:00:${ip.split(".").slice(1).map((o) => Number(o).toString(16).padStart(2, "0")).join(":")}`;
const run = async (...cmd: string[]) => (await exec(cmd[0]!, cmd.slice(1), { encoding: "utf8" })).stdout;
const attempt = (...cmd: string[]) => run(...cmd).then(() => undefined, () => undefined);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function unary<Req, Res>(client: agent.HostAgentClient, method: (req: Req, md: Metadata, opts: object, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${SECRET}`);
  return new Promise((resolve, reject) => method.call(client, req, md, { deadline: new Date(Date.now() + 120_000) }, (err, res) => (err ? reject(err) : resolve(res))));
}

/** One CreateInstance as the agent logged it. */
interface AgentTiming {
  instanceId: string;
  ok: boolean;
  ms: number;
  phases: Record<string, number>;
  spans?: Record<string, number>;
  commands?: Array<{ argv: string[]; atMs: number; ms: number; code: number; phase?: string }>;
}

/** A free 10.x.y.0/24 (its gateway routed only by the default route), as the agent tests pick theirs. */
async function freeSubnet(): Promise<{ octets: string; cidr: string; gateway: string }> {
  for (let i = 0; i < 20; i++) {
    const octets = `10.${64 + Math.floor(Math.random() * 128)}.${Math.floor(Math.random() * 255)}`;
    if (/^\S+ via /.test(await run("ip", "route", "get", `${octets}.1`))) return { octets, cidr: `${octets}.0/24`, gateway: `${octets}.1` };
  }
  throw new Error("no free 10.x.y.0/24 found");
}

/** The benchmark's own cluster CA, and the control plane's credential from it (naming 127.0.0.1, where it listens). */
const CA = await createCa("bench CA");
const CONTROL_PLANE = await issueCredential(CA, CONTROL_PLANE_CN, ["127.0.0.1"]);

class FakeControl {
  readonly server = new Server();
  heartbeats = 0;
  /** Instances the control plane wants here, with their NICs. */
  readonly desired = new Map<string, agent.InstanceSpec>();

  /** The revision of the host state this control plane compiled last. */
  revision = 0;

  constructor(private readonly networkState: () => agent.HostNetworkState) {}

  /** The host state now, with the next revision (what the API compiles and pushes). */
  hostState(): agent.HostState {
    return { revision: ++this.revision, instances: [...this.desired.values()], network: this.networkState() };
  }

  async listen(port: number): Promise<void> {
    this.server.addService(agent.HostControlService, {
      registerHost: (call: ServerUnaryCall<agent.RegisterHostRequest, agent.RegisterHostResponse>, cb: sendUnaryData<agent.RegisterHostResponse>) => {
        if (call.request.enrolmentToken !== TOKEN && call.request.hostSecret !== SECRET) return cb({ code: status.UNAUTHENTICATED, details: "AuthFailure" } as ServiceError);
        cb(null, { hostId: HOST_ID, hostSecret: SECRET, certificatePem: issueCertificate(CA, csrPublicKey(call.request.csrPem), HOST_ID, ["127.0.0.1"]) });
      },
      heartbeat: (call: ServerUnaryCall<agent.HeartbeatRequest, agent.HeartbeatResponse>, cb: sendUnaryData<agent.HeartbeatResponse>) => {
        this.heartbeats++;
        cb(null, { state: call.request.appliedRevision < this.revision || this.revision === 0 ? this.hostState() : undefined });
      },
      getUserData: (_call: ServerUnaryCall<agent.UserDataRequest, agent.UserData>, cb: sendUnaryData<agent.UserData>) => cb(null, { userData: Buffer.alloc(0) }),
      // The benchmark removes what it made itself: the agent keeps everything.
      classifyInstances: (call: ServerUnaryCall<agent.ClassifyInstancesRequest, agent.ClassifyInstancesResponse>, cb: sendUnaryData<agent.ClassifyInstancesResponse>) =>
        cb(null, { instances: call.request.instanceIds.map((instanceId) => ({ instanceId, verdict: agent.InstanceVerdict.INSTANCE_VERDICT_KEEP })) }),
    });
    await new Promise<void>((resolve, reject) => this.server.bindAsync(`127.0.0.1:${port}`, clusterServerCredentials(CA.certPem, CONTROL_PLANE, false), (err) => (err ? reject(err) : resolve())));
  }
}

async function until(check: () => boolean, timeoutMs: number, what: string, agentOutput: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; agent output:\n${agentOutput().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (libvirt, bridges, iptables)");
  const mainJs = join(REPO, "agents/host-agent/dist/main.js");
  if (!existsSync(mainJs)) throw new Error(`${mainJs} is missing: npx turbo run build --filter=@cirrus/host-agent`);
  await virsh("version");
  const amiDir = realpathSync(AMI_DIR);
  const manifest = JSON.parse(readFileSync(join(amiDir, "manifest.json"), "utf8")) as Record<string, string>;
  const image: agent.ImageSpec = { imageId: "ami-0000000000000test", rootPath: join(amiDir, manifest.root!), kernelPath: join(amiDir, manifest.kernel!), ramdiskPath: join(amiDir, manifest.ramdisk!), kernelCmdline: manifest.cmdline! };

  const tag = randomBytes(2).toString("hex");
  const domainPrefix = `cirrusbench-${tag}-`;
  const netPrefix = `B${tag.toUpperCase()}`;
  mkdirSync("/var/lib/cirrus", { recursive: true, mode: 0o755 });
  const base = mkdtempSync("/var/lib/cirrus/bench-agent-");
  chmodSync(base, 0o755);
  const dirs = { instances: join(base, "instances"), network: join(base, "network"), state: join(base, "state"), raw: join(base, "raw") };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true, mode: 0o755 });
  const subnet = await freeSubnet();
  const subnetId = newId("subnet");
  const forwarding = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();

  const live = new Map<string, agent.InstanceSpec>();
  const networkState = (): agent.HostNetworkState => ({
    firewalls: [...live.keys()].map((instanceId) => ({ instanceId, ingress: [], egress: [{ protocol: "all", fromPort: -1, toPort: -1, cidrs: ["0.0.0.0/0"] }] })),
    elasticIps: [],
    metadata: [...live.values()].filter((s) => s.network).map((s) => ({
      instanceId: s.instanceId, amiId: image.imageId, instanceType: "t2.nano", availabilityZone: "lab-1a", region: "lab-1",
      localIpv4: s.network!.privateIp, publicIpv4: "", mac: s.network!.macAddress, localHostname: "", reservationId: newId("r"),
      securityGroups: ["default"], publicKeys: [], userData: Buffer.alloc(0),
    })),
  });
  const control = new FakeControl(networkState);
  const [controlPort, agentPort, metadataPort] = [await freePort(), await freePort(), await freePort()];
  await control.listen(controlPort);

  let child: ChildProcess | undefined;
  let output = "";
  /** Each instance's CreateInstance calls as the agent logged them, in order. */
  const timings = new Map<string, AgentTiming[]>();
  const client = new agent.HostAgentClient(`127.0.0.1:${agentPort}`, clusterChannelCredentials(CA.certPem, CONTROL_PLANE));
  const caFile = join(base, "ca.pem");
  writeFileSync(caFile, CA.certPem);
  const agentMs: number[] = [];
  const rawMs: number[] = [];
  const againMs: number[] = [];
  const counted: AgentTiming[] = [];
  const countedAgain: AgentTiming[] = [];
  let template: { xml: string; name: string; uuid: string; overlay: string; consoleLog: string; tap?: string; mac?: string } | undefined;

  try {
    child = spawn(process.execPath, [mainJs], {
      cwd: join(REPO, "agents/host-agent"),
      env: {
        PATH: process.env.PATH,
        CIRRUS_LOG_LEVEL: "debug",
        CIRRUS_DRIVER: "libvirt",
        CIRRUS_HYPERVISOR: process.env.CIRRUS_HYPERVISOR ?? "qemu",
        CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${controlPort}`,
        CIRRUS_CONTROL_CA: caFile,
        CIRRUS_ENROLMENT_TOKEN: TOKEN,
        CIRRUS_AGENT_LISTEN: `127.0.0.1:${agentPort}`,
        CIRRUS_STATE_DIR: dirs.state,
        CIRRUS_INSTANCES_DIR: dirs.instances,
        CIRRUS_DOMAIN_PREFIX: domainPrefix,
        CIRRUS_NETWORK_DIR: dirs.network,
        CIRRUS_NET_PREFIX: netPrefix,
        CIRRUS_METADATA_PORT: String(metadataPort),
        CIRRUS_HEARTBEAT_MS: String(HEARTBEAT_MS),
        // Bridges outlive their last instance by this long: keep ours for the whole run.
        CIRRUS_ORPHAN_GRACE_MS: "86400000",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child!.on("exit", resolve));
    void exited.then((code) => (output += `\n[agent exited with ${code}]`));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output += `${line}\n`;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (entry.msg === "createInstance timings") timings.set(String(entry.instanceId), [...(timings.get(String(entry.instanceId)) ?? []), entry as unknown as AgentTiming]);
      else if (typeof entry.level === "number" && entry.level >= 40) console.error(`agent ${entry.level >= 50 ? "error" : "warning"}: ${line.slice(0, 1000)}`);
    });
    await until(() => control.heartbeats > 0, 60_000, "the agent's first heartbeat", () => output);

    const launchAgent = async (round: number): Promise<number> => {
      const id = newId("i");
      const ip = `${subnet.octets}.${10 + (round % 200)}`;
      const spec: agent.InstanceSpec = {
        instanceId: id, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image,
        network: WITH_NIC ? { subnetId, subnetCidr: subnet.cidr, gatewayIp: subnet.gateway, privateIp: ip, macAddress: macFor(ip) } : undefined,
        reuseRootDisk: false,
        volumes: [],
        instanceStore: [],
      };
      live.set(id, spec);
      control.desired.set(id, spec);
      // What the API's notifier pushes after the RunInstances commit.
      await unary(client, client.applyHostState, control.hostState());
      const t0 = performance.now();
      const res = await unary(client, client.createInstance, { spec });
      const ms = performance.now() - t0;
      if (res.powerState !== agent.PowerState.POWER_STATE_RUNNING) throw new Error(`CreateInstance answered ${res.powerState}`);
      const name = domainPrefix + id;
      if (!template) {
        const xml = await virsh("dumpxml", "--inactive", name);
        const pick = (re: RegExp) => re.exec(xml)?.[1];
        template = {
          xml, name,
          uuid: pick(/<uuid>([^<]+)<\/uuid>/)!,
          overlay: join(dirs.instances, `${domainPrefix}${id}.qcow2`),
          consoleLog: join(dirs.instances, `${domainPrefix}${id}.console.log`),
          tap: pick(/<target dev='([^']+)'\/>\s*<model/) ?? pick(/<interface[^]*?<target dev='([^']+)'/),
          mac: pick(/<mac address='([^']+)'/),
        };
      }
      // A retry of the same call (what a worker does after losing the answer): the domain runs, nothing to change.
      const t1 = performance.now();
      await unary(client, client.createInstance, { spec });
      const again = performance.now() - t1;
      // The terminate the control plane would do: destroy, then the network state without the instance.
      await unary(client, client.destroyInstance, { instanceId: id });
      live.delete(id);
      control.desired.delete(id);
      await unary(client, client.applyHostState, control.hostState());
      const [timing, timingAgain] = timings.get(id) ?? [];
      if (round > 0) {
        againMs.push(again);
        if (timing) counted.push(timing);
        if (timingAgain) countedAgain.push(timingAgain);
      }
      if (TRACE && timing?.commands) {
        console.log(`  agent round ${round}: ${ms.toFixed(1)} ms over gRPC, ${timing.ms} ms in the driver`);
        for (const c of timing.commands) console.log(`    +${c.atMs.toFixed(1).padStart(6)} ${c.ms.toFixed(1).padStart(6)} ms  ${c.phase ?? ""}  ${c.argv.join(" ").slice(0, 150)}`);
      }
      return ms;
    };

    const launchRaw = async (round: number): Promise<number> => {
      if (!template) throw new Error("no domain XML to copy yet");
      const name = `${domainPrefix}raw${round}`;
      const overlay = join(dirs.raw, `raw${round}.qcow2`);
      const consoleLog = join(dirs.raw, `raw${round}.console.log`);
      const xmlFile = join(dirs.raw, `raw${round}.xml`);
      const replacements: Array<[string, string]> = [
        [template.overlay, overlay],
        [template.consoleLog, consoleLog],
        [`<name>${template.name}</name>`, `<name>${name}</name>`],
        [template.uuid, randomUUID()],
      ];
      if (template.tap) replacements.push([`'${template.tap}'`, `'cr${tag}${round.toString(16).padStart(4, "0")}'`]);
      if (template.mac) replacements.push([template.mac, `52:54:00:fe:${(round >> 8).toString(16).padStart(2, "0")}:${(round & 0xff).toString(16).padStart(2, "0")}`]);
      writeFileSync(xmlFile, rewriteXml(template.xml, replacements));
      const ms = await rawLaunch(image.rootPath, overlay, 1, xmlFile);
      await virsh("destroy", name);
      rmSync(overlay, { force: true });
      rmSync(consoleLog, { force: true });
      rmSync(xmlFile, { force: true });
      return ms;
    };

    const [agentSide, rawSide] = await runRounds(ROUNDS, [
      { name: "agent", run: launchAgent },
      { name: "raw", run: launchRaw },
    ]);
    agentMs.push(...agentSide!.ms);
    rawMs.push(...rawSide!.ms);
  } finally {
    client.close();
    for (const name of (await virsh("list", "--all", "--name").catch(() => "")).split("\n").map((l) => l.trim()).filter((n) => n.startsWith(domainPrefix))) {
      await virsh("destroy", name).catch(() => undefined);
      await virsh("undefine", name).catch(() => undefined);
    }
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    }
    control.server.forceShutdown();
    await tearDownNetwork(dirs.network, netPrefix, forwarding);
    rmSync(base, { recursive: true, force: true });
  }

  const nic = WITH_NIC ? "with a NIC" : "without a NIC";
  const reproduce = `npm run -w @cirrus/bench launch:agent -- ${ROUNDS}${WITH_NIC ? "" : " --no-nic"}${HEARTBEAT_MS !== 3_600_000 ? ` --heartbeat-ms ${HEARTBEAT_MS}` : ""}`;
  console.log(report(`CreateInstance (test AMI, ${nic}) to RUNNING, ${ROUNDS} rounds after a warm-up, order alternating:`, [
    { name: "agent CreateInstance", ms: agentMs },
    { name: "raw qemu-img create + virsh create", ms: rawMs },
  ], reproduce));
  console.log(report("CreateInstance again, the domain running (nothing to do; not part of the ratio):", [{ name: "agent CreateInstance again", ms: againMs }], reproduce).split("\n").slice(0, 4).join("\n"));
  const span = (ts: readonly AgentTiming[]) => (ts.length > 0 && ts.every((t) => t.spans?.network !== undefined) ? `${median(ts.map((t) => t.spans!.network!)).toFixed(1)} ms` : "n/a");
  if (WITH_NIC) console.log(`host network attach (bridge, DHCP, firewall; runs alongside the state read and the overlay), median: one instance added ${span(counted)}, nothing to change ${span(countedAgain)}`);
  printBreakdown(counted, "a new instance");
  printBreakdown(countedAgain, "CreateInstance again");
}

/** Medians over the counted rounds: per phase, and per command (by label and occurrence). */
function printBreakdown(timings: readonly AgentTiming[], what: string): void {
  if (timings.length === 0) return;
  console.log(`\nwhere the agent's time goes, ${what} (median over ${timings.length} rounds, as the driver measured it: ${median(timings.map((t) => t.ms)).toFixed(1)} ms):`);
  const phaseNames = [...new Set(timings.flatMap((t) => Object.keys(t.phases)))];
  console.log(`  phases: ${phaseNames.map((p) => `${p} ${median(timings.map((t) => t.phases[p] ?? 0)).toFixed(1)}`).join(", ")} (ms)`);
  if (!timings.every((t) => t.commands)) return;
  const rows = new Map<string, { phase: string; ms: number[] }>();
  const outside: number[] = [];
  const counts: number[] = [];
  for (const t of timings) {
    const seen = new Map<string, number>();
    for (const c of t.commands!) {
      const label = commandLabel(c.argv);
      const k = (seen.get(label) ?? 0) + 1;
      seen.set(label, k);
      const key = k > 1 ? `${label} (#${k})` : label;
      const row = rows.get(key) ?? { phase: c.phase ?? "", ms: [] };
      row.ms.push(c.ms);
      rows.set(key, row);
    }
    counts.push(t.commands!.length);
    // Time in no command at all: JS, locks, logging (commands may overlap).
    let covered = 0;
    let end = 0;
    for (const c of [...t.commands!].sort((a, b) => a.atMs - b.atMs)) {
      const s = Math.max(c.atMs, end);
      const e = c.atMs + c.ms;
      if (e > s) covered += e - s;
      end = Math.max(end, e);
    }
    outside.push(t.ms - covered);
  }
  console.log(`  commands per call: median ${median(counts)}; time outside any command: median ${median(outside).toFixed(1)} ms`);
  console.log(`  ${"phase".padEnd(8)} ${"median".padStart(8)} ${"p90".padStart(8)}  ${"n".padStart(3)}  command`);
  for (const [label, row] of rows) {
    const s = summarize(row.ms);
    console.log(`  ${row.phase.padEnd(8)} ${s.median.toFixed(1).padStart(8)} ${s.p90.toFixed(1).padStart(8)}  ${String(s.n).padStart(3)}  ${label}`);
  }
}

/** Removes what the agent's network left (it keeps bridges, dnsmasq and chains when it stops, by design). */
async function tearDownNetwork(dir: string, prefix: string, forwarding: string): Promise<void> {
  const links = JSON.parse((await run("ip", "-j", "-d", "link", "show", "type", "bridge").catch(() => "")) || "[]") as Array<{ ifname?: string; ifalias?: string }>;
  for (const { ifname: bridge } of links.filter((l) => l.ifalias?.startsWith(`cirrus:${prefix}:`))) {
    const pidFile = join(dir, `${bridge}.pid`);
    if (existsSync(pidFile)) await attempt("kill", readFileSync(pidFile, "utf8").trim());
    await attempt("ip", "link", "del", bridge!);
  }
  for (const table of ["filter", "nat"]) {
    const saved = await run("iptables-save", "-t", table).catch(() => "");
    for (const m of saved.matchAll(new RegExp(`^-A (\\S+) -j (${prefix}-\\S+)$`, "gm"))) await attempt("iptables", "-t", table, "-D", m[1]!, "-j", m[2]!);
    const chains = [...saved.matchAll(new RegExp(`^:(${prefix}-\\S+) `, "gm"))].map((m) => m[1]!);
    for (const c of chains) await attempt("iptables", "-t", table, "-F", c);
    for (const c of chains) await attempt("iptables", "-t", table, "-X", c);
  }
  const others = (await run("ip", "-d", "link", "show", "type", "bridge").catch(() => "")).includes("alias cirrus:") || (await run("ip", "netns", "list").catch(() => "")).includes("cirrus-");
  if (!others) writeFileSync("/proc/sys/net/ipv4/ip_forward", forwarding);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
