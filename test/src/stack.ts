// A whole Cirrus stack for end-to-end tests, made of real processes: the API,
// workers and host agents (libvirt or fake driver), on a fresh Postgres
// database and a private Redis key prefix. Every process can be killed and
// restarted. Domains carry a per-run prefix, so a test never touches a domain
// it did not make; teardown removes everything the run created.
import { execFile, spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import pg from "pg";
import { bearerMetadata, callUnary, clusterChannelCredentials, issueCredential, signCall, type AccessKey } from "@cirrus/common";
import { bridgeName, tapName } from "@cirrus/host-agent";
import { agent, compute } from "@cirrus/proto";
import { readForwarding, removeBridges, removeChains, restoreForwarding } from "./hostCleanup.js";

export const repoRoot = new URL("../..", import.meta.url).pathname;
const ADMIN_URL = process.env.CIRRUS_TEST_ADMIN_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.CIRRUS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_AMI_DIR = process.env.CIRRUS_TEST_AMI_DIR ?? "/var/lib/cirrus/images/test-ami";
const ENROLMENT_TOKEN = randomBytes(24).toString("hex");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ""}`);
}

/** A child process of the stack that can be killed (SIGKILL) and started again with the same environment. */
export class Proc {
  child?: ChildProcess;
  constructor(readonly name: string, private readonly script: string, readonly env: Record<string, string>, private readonly logDir: string) {}

  start(): void {
    const log = createWriteStream(join(this.logDir, `${this.name}.log`), { flags: "a" });
    // The compiled program under node itself, so signals reach the real process.
    this.child = spawn(process.execPath, [this.script], { cwd: repoRoot, env: { ...process.env, ...this.env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.pipe(log);
    this.child.stderr?.pipe(log);
  }

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const c = this.child;
    if (!c || !this.alive) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill(signal);
    });
  }

  async restart(): Promise<void> {
    await this.kill();
    this.start();
  }
}

export interface AgentOptions {
  name: string;
  driver: "libvirt" | "fake";
  zone?: string;
  capacity?: { vcpus: number; memoryMib: number; diskGib: number };
  extraEnv?: Record<string, string>;
}

export class Stack {
  readonly runId = randomBytes(4).toString("hex");
  /** The cluster enrolment token this stack's API accepts. */
  readonly enrolmentToken = ENROLMENT_TOKEN;
  readonly dbName = `cirrus_t_${this.runId}`;
  readonly databaseUrl: string;
  readonly queuePrefix = `cirrus-t-${this.runId}`;
  readonly domainPrefix = `cirrust${this.runId}-`;
  readonly workDir = `/var/lib/cirrus/test-runs/${this.runId}`;
  /** Per-run networks, so runs (and a demo stack) on one machine never share addresses. */
  readonly vpcOctet = 64 + (parseInt(this.runId.slice(0, 2), 16) % 160);
  readonly defaultVpcCidr = `10.${this.vpcOctet}.0.0/16`;
  readonly addressPool = `198.18.${parseInt(this.runId.slice(2, 4), 16)}.0/24`;
  /** iptables chain prefix of this run's agents. */
  readonly netPrefix = `T${this.runId.toUpperCase().slice(0, 7)}`;
  /** Another chain prefix, for an agent that must not share the others' network state (one on another agent's instances directory). */
  readonly altNetPrefix = `U${this.runId.toUpperCase().slice(0, 7)}`;
  readonly networkDir = join(this.workDir, "network");
  /** The cluster CA's certificate, as the API writes it; the agents' CIRRUS_CONTROL_CA. */
  readonly caFile = join(this.workDir, "ca.pem");
  readonly logDir = join(this.workDir, "logs");
  /** The operator's secrets key (the API makes it at start). */
  readonly secretsKeyFile = join(this.workDir, "secrets.key");
  apiPort = 0;
  controlPort = 0;
  queryPort = 0;
  api!: Proc;
  workers: Proc[] = [];
  agents = new Map<string, Proc>();
  client!: compute.ComputeClient;
  pool!: pg.Pool;
  /** The account `npm run up` would make ("default", 123456789012), whose key signs `call` and the CLI's calls. */
  readonly defaultAccountId = "123456789012";
  key!: AccessKey;
  /** HOME of the CLIs run against this stack: its .aws holds the default account's key as profile "cirrus". */
  readonly home = join(this.workDir, "home");

  /** The Redis this stack's processes use: the machine's, unless the test brings its own (opts.redisUrl). */
  readonly redisUrl: string;

  constructor(readonly opts: { zones?: string[]; workerEnv?: Record<string, string>; apiEnv?: Record<string, string>; redisUrl?: string } = {}) {
    this.redisUrl = opts.redisUrl ?? REDIS_URL;
    const u = new URL(ADMIN_URL);
    u.pathname = `/${this.dbName}`;
    this.databaseUrl = u.toString();
  }

  private baseEnv(): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redisUrl,
      CIRRUS_QUEUE_PREFIX: this.queuePrefix,
      CIRRUS_ENROLMENT_TOKEN: ENROLMENT_TOKEN,
      CIRRUS_LOG_LEVEL: "debug",
      // The API and the agents take image files from where the test AMI is.
      CIRRUS_IMAGE_DIRS: dirname(TEST_AMI_DIR),
      CIRRUS_SECRETS_KEY_FILE: this.secretsKeyFile,
    };
  }

  /** What the API and `cirrus-admin` both read: the cloud's configuration for this run. */
  private controlPlaneEnv(): Record<string, string> {
    return {
      ...this.baseEnv(),
      CIRRUS_ZONES: (this.opts.zones ?? ["lab-1a"]).join(","),
      CIRRUS_HOST_DEAD_AFTER_MS: "15000",
      CIRRUS_DRIFT_GRACE_MS: "3000",
      CIRRUS_DEFAULT_VPC_CIDR: this.defaultVpcCidr,
      CIRRUS_ADDRESS_POOL: this.addressPool,
      CIRRUS_CA_CERT_FILE: this.caFile,
      // Guests in tests get no egress rule towards anything outside the test networks.
      CIRRUS_DEFAULT_EGRESS_CIDR: this.defaultVpcCidr,
      ...this.opts.apiEnv,
    };
  }

  /** IPv4 forwarding before this run (the agent turns it on for its bridges). */
  private forwardingBefore = "";

  async start(workers = 1): Promise<void> {
    this.forwardingBefore = readForwarding();
    mkdirSync(this.logDir, { recursive: true });
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${this.dbName}`);
    await admin.end();
    this.pool = new pg.Pool({ connectionString: this.databaseUrl, max: 4 });
    this.apiPort = await freePort();
    this.controlPort = await freePort();
    this.queryPort = await freePort();
    this.api = new Proc("api", join(repoRoot, "services/api/dist/main.js"), {
      ...this.controlPlaneEnv(),
      CIRRUS_API_LISTEN: `127.0.0.1:${this.apiPort}`,
      CIRRUS_CONTROL_LISTEN: `127.0.0.1:${this.controlPort}`,
      CIRRUS_QUERY_LISTEN: `127.0.0.1:${this.queryPort}`,
    }, this.logDir);
    this.api.start();
    this.client = new compute.ComputeClient(`127.0.0.1:${this.apiPort}`, credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
    });
    // Serving once it refuses an unsigned call as EC2 would.
    await waitUntil("api to serve", () => callUnary(this.client, this.client.describeRegions, compute.DescribeRegionsRequest.fromPartial({})).then(
      () => true,
      (err: { details?: string }) => /^MissingParameter: /.test(err.details ?? ""),
    ), 60_000);
    const { AccessKey } = await this.admin("create-account", "--name", "default", "--account-id", this.defaultAccountId)
      .then(() => this.admin("create-access-key", "--account", "default", "--write-aws-profile", "cirrus", "--endpoint-url", this.queryEndpoint)) as { AccessKey: { AccessKeyId: string } };
    // The secret went to the profile only, as `npm run up` does it.
    const profile = readFileSync(join(this.home, ".aws/credentials"), "utf8");
    this.key = { accessKeyId: AccessKey.AccessKeyId, secretAccessKey: /aws_secret_access_key = (\S+)/.exec(profile)![1]! };
    for (let i = 0; i < workers; i++) this.addWorker();
  }

  addWorker(): Proc {
    const w = new Proc(`worker${this.workers.length}`, join(repoRoot, "services/worker/dist/main.js"), {
      ...this.baseEnv(),
      CIRRUS_JOB_LOCK_MS: "4000",
      CIRRUS_SWEEP_MS: "2000",
      CIRRUS_SWEEP_AFTER_MS: "8000",
      ...this.opts.workerEnv,
    }, this.logDir);
    w.start();
    this.workers.push(w);
    return w;
  }

  /** The region's snapshot store of this run. */
  readonly snapshotStoreDir = join(this.workDir, "storage", "region");

  /** The volume store of a zone of this run. */
  volumeStoreDir(zone: string): string {
    return join(this.workDir, "storage", `zone-${zone}`);
  }

  async addAgent(o: AgentOptions): Promise<{ proc: Proc; hostId: string; instancesDir: string; endpoint: string }> {
    const port = await freePort();
    const instancesDir = join(this.workDir, "instances", o.name);
    mkdirSync(instancesDir, { recursive: true });
    const cap = o.capacity;
    const proc = new Proc(`agent-${o.name}`, join(repoRoot, "agents/host-agent/dist/main.js"), {
      ...this.baseEnv(),
      CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${this.controlPort}`,
      CIRRUS_CONTROL_CA: this.caFile,
      CIRRUS_HOST_NAME: `${o.name}-${this.runId}`,
      CIRRUS_AVAILABILITY_ZONE: o.zone ?? "lab-1a",
      CIRRUS_AGENT_LISTEN: `127.0.0.1:${port}`,
      CIRRUS_STATE_DIR: join(this.workDir, "agent-state", o.name),
      CIRRUS_INSTANCES_DIR: instancesDir,
      CIRRUS_DRIVER: o.driver,
      CIRRUS_HYPERVISOR: "qemu",
      CIRRUS_DOMAIN_PREFIX: this.domainPrefix,
      CIRRUS_HEARTBEAT_MS: "1000",
      CIRRUS_ORPHAN_GRACE_MS: "5000",
      CIRRUS_STOP_TIMEOUT_MS: "3000",
      CIRRUS_NET_PREFIX: this.netPrefix,
      CIRRUS_NETWORK_DIR: join(this.networkDir, o.name),
      CIRRUS_METADATA_PORT: String(await freePort()),
      // The stores every host of a zone (of the region) shares: here one directory per zone for all of the run's agents.
      CIRRUS_VOLUME_STORE_DIR: this.volumeStoreDir(o.zone ?? "lab-1a"),
      CIRRUS_SNAPSHOT_STORE_DIR: this.snapshotStoreDir,
      CIRRUS_STORAGE_TRANSFER_DIR: join(this.workDir, "storage", "transfer"),
      ...(cap ? { CIRRUS_CAPACITY_VCPUS: String(cap.vcpus), CIRRUS_CAPACITY_MEMORY_MIB: String(cap.memoryMib), CIRRUS_CAPACITY_DISK_GIB: String(cap.diskGib) } : {}),
      ...o.extraEnv,
    }, this.logDir);
    proc.start();
    this.agents.set(o.name, proc);
    const hostId = await waitUntil(`agent ${o.name} to register`, async () => {
      const { rows } = await this.pool.query<{ id: string }>("SELECT h.id FROM hosts h JOIN host_heartbeats b ON b.host_id = h.id WHERE h.name = $1 AND b.last_heartbeat_at > now() - interval '5 seconds'", [`${o.name}-${this.runId}`]);
      return rows[0]?.id;
    }, 90_000);
    return { proc, hostId, instancesDir, endpoint: `127.0.0.1:${port}` };
  }

  /** Calls a Compute RPC by its ts-proto method name, with a partial request (defaults filled in). */
  /** Calls the compute API as the default account (or with `key`), signed as the CLI signs. */
  async call<K extends keyof compute.ComputeClient & string>(method: K, request: unknown, timeoutMs = 60_000, key: AccessKey = this.key): Promise<any> {
    const m = (this.client as any)[method];
    const rpc = (compute.ComputeService as any)[method] as { path: string; requestSerialize(r: unknown): Buffer };
    // Request types are named after the RPC, except the shared Authorize/Revoke ones.
    const name = `${method[0]!.toUpperCase()}${method.slice(1)}`;
    const type = (compute as any)[`${name}Request`] ?? (compute as any)[`${name.replace(/(Ingress|Egress)$/, "")}Request`];
    const req = type.fromPartial(request ?? {});
    const metadata = await signCall(key, this.opts.apiEnv?.CIRRUS_REGION ?? "lab-1", { authority: `127.0.0.1:${this.apiPort}`, path: rpc.path, body: rpc.requestSerialize(req) });
    return callUnary(this.client, m, req, metadata, timeoutMs);
  }

  /** TLS credentials from this stack's cluster CA (read from its database) for a client named `commonName`: a host id, or CONTROL_PLANE_CN. */
  async clusterCredentials(commonName: string): Promise<ChannelCredentials> {
    const { rows: [ca] } = await this.pool.query<{ cert_pem: string; key_pem: string }>("SELECT cert_pem, key_pem FROM cluster_ca");
    const credential = { certPem: ca!.cert_pem, keyPem: ca!.key_pem };
    return clusterChannelCredentials(credential.certPem, await issueCredential(credential, commonName, []));
  }

  /** A host's current state, as the control plane answers a heartbeat from an agent that has applied none yet. */
  async hostState(hostId: string): Promise<agent.HostState> {
    const { rows: [h] } = await this.pool.query<{ secret: string }>("SELECT secret FROM hosts WHERE id = $1", [hostId]);
    const control = new agent.HostControlClient(`127.0.0.1:${this.controlPort}`, await this.clusterCredentials(hostId));
    try {
      const res = await callUnary(control, control.heartbeat, agent.HeartbeatRequest.fromPartial({ hostId }), bearerMetadata(h!.secret, hostId));
      if (!res.state) throw new Error(`no host state for ${hostId}`);
      return res.state;
    } finally {
      control.close();
    }
  }

  /** Runs the `cirrus` CLI (the built bin) against this stack; never throws for a non-zero exit. */
  async cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [join(repoRoot, "services/cli/bin/cirrus.js"), ...args], {
        env: this.cliEnv(),
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  /** The environment a CLI (cirrus, aws) needs to reach this stack as the default account. */
  cliEnv(): NodeJS.ProcessEnv {
    return { ...process.env, CIRRUS_ENDPOINT: `127.0.0.1:${this.apiPort}`, AWS_PROFILE: "cirrus", AWS_SHARED_CREDENTIALS_FILE: join(this.home, ".aws/credentials"), AWS_CONFIG_FILE: join(this.home, ".aws/config") };
  }

  /** The Query API's endpoint URL. */
  get queryEndpoint(): string {
    return `http://127.0.0.1:${this.queryPort}`;
  }

  /** Runs `cirrus-admin` (the built bin) against this stack's database; throws with its stderr on a non-zero exit. */
  async admin(...args: string[]): Promise<unknown> {
    const { stdout } = await promisify(execFile)(process.execPath, [join(repoRoot, "services/api/bin/cirrus-admin.js"), ...args], {
      env: { ...process.env, ...this.controlPlaneEnv(), HOME: this.home },
    }).catch((err: { stderr: string }) => {
      throw new Error(`cirrus-admin ${args.join(" ")}: ${err.stderr}`);
    });
    return stdout.trim() ? JSON.parse(stdout) : undefined;
  }

  /** A new account (through `cirrus-admin`, as an operator makes one) and an access key of it. */
  async newAccount(name: string, accountId?: string): Promise<{ accountId: string; accessKeyId: string; secretAccessKey: string }> {
    const { Account } = await this.admin("create-account", "--name", name, ...(accountId ? ["--account-id", accountId] : [])) as { Account: { AccountId: string } };
    const { AccessKey } = await this.admin("create-access-key", "--account", Account.AccountId) as { AccessKey: { AccessKeyId: string; SecretAccessKey: string } };
    return { accountId: Account.AccountId, accessKeyId: AccessKey.AccessKeyId, secretAccessKey: AccessKey.SecretAccessKey };
  }

  async registerTestImage(name = `test-ami-${this.runId}`): Promise<string> {
    // The resolved directory: images/test-ami is a symlink that moves when the AMI is rebuilt.
    const dir = realpathSync(TEST_AMI_DIR);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { kernel: string; ramdisk: string; root: string; cmdline: string };
    const res = await this.call("registerImage", {
      Name: name,
      ImageLocation: join(dir, manifest.root),
      KernelLocation: join(dir, manifest.kernel),
      RamdiskLocation: join(dir, manifest.ramdisk),
      KernelCommandLine: manifest.cmdline,
      BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 1 } }],
    });
    return res.ImageId as string;
  }

  async instance(id: string): Promise<compute.Instance> {
    const res = await this.call("describeInstances", { InstanceIds: [id] });
    return res.Reservations[0].Instances[0];
  }

  async waitForState(ids: string[], state: string, timeoutMs = 120_000): Promise<void> {
    await waitUntil(`${ids.join(",")} to be ${state}`, async () => {
      const res = await this.call("describeInstances", { InstanceIds: ids });
      const states = res.Reservations.flatMap((r: compute.Reservation) => r.Instances.map((i) => i.State?.Name));
      return states.length === ids.length && states.every((s: string) => s === state);
    }, timeoutMs, 500);
  }

  async consoleText(id: string): Promise<string> {
    const res = await this.call("getConsoleOutput", { InstanceId: id });
    return Buffer.from(res.Output as string, "base64").toString("utf8");
  }

  /** The tap device of an instance's NIC. */
  tapName(instanceId: string): string {
    return tapName(instanceId);
  }

  /** virsh domstate of this run's domain for an instance, or "absent". */
  domState(instanceId: string): string {
    try {
      return execFileSync("virsh", ["-c", "qemu:///system", "domstate", `${this.domainPrefix}${instanceId}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return "absent";
    }
  }

  /** Names of this run's domains known to libvirt. */
  domains(): string[] {
    try {
      return execFileSync("virsh", ["-c", "qemu:///system", "list", "--all", "--name"], { encoding: "utf8" })
        .split("\n").map((s) => s.trim()).filter((s) => s.startsWith(this.domainPrefix));
    } catch {
      return [];
    }
  }

  async stop(): Promise<void> {
    for (const p of [...this.agents.values(), ...this.workers, this.api]) await p?.kill("SIGKILL");
    this.client?.close();
    for (const d of this.domains()) {
      for (const args of [["destroy", d], ["undefine", d]]) {
        try {
          execFileSync("virsh", ["-c", "qemu:///system", ...args], { stdio: "ignore" });
        } catch {
          // already gone
        }
      }
    }
    // What the killed agents left on the host: bridges, dnsmasq, iptables chains.
    const subnets = await this.pool?.query<{ id: string }>("SELECT id FROM subnets").catch(() => ({ rows: [] as { id: string }[] }));
    removeBridges((subnets?.rows ?? []).map((r) => bridgeName(r.id)), this.networkDir);
    removeChains(this.netPrefix);
    removeChains(this.altNetPrefix);
    restoreForwarding(this.forwardingBefore);
    await this.pool?.end().catch(() => undefined);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${this.dbName} WITH (FORCE)`);
    await admin.end();
    const redis = new Redis(this.redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    const keys = await redis.keys(`${this.queuePrefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    if (!process.env.CIRRUS_TEST_KEEP && existsSync(this.workDir)) rmSync(this.workDir, { recursive: true, force: true });
  }
}
