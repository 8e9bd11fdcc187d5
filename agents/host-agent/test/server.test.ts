import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { bearerMetadata, callUnary, clusterChannelCredentials, issueCredential, type Credential } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeDriver } from "../src/driver/fake.js";
import { DriverError, type HypervisorDriver } from "../src/driver/types.js";
import { KeyedMutex } from "../src/keyed-mutex.js";
import { OwnershipRecords } from "../src/ownership.js";
import { UnmanagedNetwork } from "../src/network/types.js";
import { serveHostAgent, type RunningServer } from "../src/server.js";
import { A, B, quietLogger, testPki, testSpec } from "./helpers.js";
import { MemoryStorage } from "./memory-storage.js";

const { PowerState } = agent;
const SECRET = "host-secret-0123456789";
const BAD_IMAGE = "i-0000000000000bad1";
const BROKEN = "i-0000000000000bad2";

/** The fake driver plus scripted failures, and a record of overlapping calls per instance. */
class ScriptedDriver extends FakeDriver {
  inFlight = new Map<string, number>();
  maxInFlight = new Map<string, number>();
  maxTotalInFlight = 0;
  private total = 0;

  override async createInstance(spec: agent.InstanceSpec): Promise<agent.PowerState> {
    const id = spec.instanceId;
    const n = (this.inFlight.get(id) ?? 0) + 1;
    this.inFlight.set(id, n);
    this.maxInFlight.set(id, Math.max(n, this.maxInFlight.get(id) ?? 0));
    this.maxTotalInFlight = Math.max(++this.total, this.maxTotalInFlight);
    try {
      await new Promise((r) => setTimeout(r, 100));
      if (id === BAD_IMAGE) throw new DriverError("InvalidImage", "root disk /images/x is not on this host");
      if (id === BROKEN) throw new Error("virsh start failed: host is busy");
      return await super.createInstance(spec);
    } finally {
      this.inFlight.set(id, n - 1);
      this.total--;
    }
  }
}

describe("HostAgent gRPC server", () => {
  let server: RunningServer;
  let client: agent.HostAgentClient;
  let driver: ScriptedDriver;
  let secret: string | undefined = SECRET;
  const applied: agent.HostState[] = [];
  const network = new (class extends UnmanagedNetwork {
    override async applyHostState(state: agent.HostState): Promise<boolean> {
      const newer = await super.applyHostState(state);
      if (newer) applied.push(state);
      return newer;
    }
  })();

  const HOST_ID = "h-0123456789abcdef0";
  const stateDir = mkdtempSync(join(tmpdir(), "cirrus-owned-"));
  const owned = new OwnershipRecords(stateDir);
  let pki: Awaited<ReturnType<typeof testPki>>;
  // The agent's own certificate, as registration gives it.
  let own: Credential;

  beforeAll(async () => {
    pki = await testPki();
    own = await issueCredential(pki.ca, HOST_ID, ["127.0.0.1"]);
    driver = new ScriptedDriver({ capacity: { vcpus: 16, memoryMib: 16384, diskGib: 100 } });
    server = await serveHostAgent("127.0.0.1:0", {
      driver: driver as HypervisorDriver,
      network,
      hostSecret: () => secret,
      hostId: () => HOST_ID,
      owned,
      locks: new KeyedMutex(),
      stopTimeoutMs: 1000,
      storage: new MemoryStorage(),
      detachWaitMs: 1000,
      log: quietLogger(),
    }, { caPem: pki.ca.certPem, own });
    client = new agent.HostAgentClient(`127.0.0.1:${server.port}`, pki.channelCredentials());
  });

  afterAll(async () => {
    client?.close();
    await server?.stop(1000);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const create = (spec: agent.InstanceSpec | undefined, md: Metadata = bearerMetadata(SECRET)) => callUnary(client, client.createInstance, { spec }, md, 5000);
  const failure = (p: Promise<unknown>) => p.then(() => { throw new Error("call succeeded"); }, (e: unknown) => e as ServiceError);

  it("serves the control plane's certificate only: another agent's (same CA) is UNAUTHENTICATED, none or plaintext never connects", async () => {
    const as = async (creds: ReturnType<typeof pki.channelCredentials>) => {
      const c = new agent.HostAgentClient(`127.0.0.1:${server.port}`, creds);
      try {
        return await failure(callUnary(c, c.getConsoleOutput, { instanceId: A }, bearerMetadata(SECRET), 3000));
      } finally {
        c.close();
      }
    };
    const otherAgent = await issueCredential(pki.ca, "h-00000000000000001", ["127.0.0.1"]);
    expect((await as(clusterChannelCredentials(pki.ca.certPem, otherAgent))).code).toBe(status.UNAUTHENTICATED);
    expect((await as(clusterChannelCredentials(pki.ca.certPem))).code).toBe(status.UNAVAILABLE);
    expect((await as(credentials.createInsecure())).code).toBe(status.UNAVAILABLE);
  });

  it("rejects calls without a secret, with a wrong one, or with a non-bearer header as UNAUTHENTICATED", async () => {
    expect((await failure(create(testSpec(A), new Metadata()))).code).toBe(status.UNAUTHENTICATED);
    expect((await failure(create(testSpec(A), bearerMetadata("wrong")))).code).toBe(status.UNAUTHENTICATED);
    expect((await failure(create(testSpec(A), bearerMetadata(`${SECRET}x`)))).code).toBe(status.UNAUTHENTICATED);
    const basic = new Metadata();
    basic.set("authorization", `Basic ${SECRET}`);
    expect((await failure(create(testSpec(A), basic))).code).toBe(status.UNAUTHENTICATED);
    expect((await failure(callUnary(client, client.getConsoleOutput, { instanceId: A }, bearerMetadata("nope"), 5000))).code).toBe(status.UNAUTHENTICATED);
    expect(await driver.list()).toEqual([]); // nothing reached the driver
  });

  it("rejects everyone while the agent has no secret yet", async () => {
    secret = undefined;
    try {
      expect((await failure(create(testSpec(A), bearerMetadata("")))).code).toBe(status.UNAUTHENTICATED);
      expect((await failure(create(testSpec(A)))).code).toBe(status.UNAUTHENTICATED);
    } finally {
      secret = SECRET;
    }
  });

  it("serves calls that carry the right secret; what it creates is on record as this host's until destroyed", async () => {
    expect(await create(testSpec(A))).toEqual({ instanceId: A, powerState: PowerState.POWER_STATE_RUNNING });
    expect(await owned.madeFor(A)).toBe(HOST_ID);
    const out = await callUnary(client, client.getConsoleOutput, { instanceId: A }, bearerMetadata(SECRET), 5000);
    expect(out.output.toString()).toBe(`CIRRUS-BOOT instance-id=${A} boot=1\n`);
    const stopped = await callUnary(client, client.stopInstance, { instanceId: A, force: true }, bearerMetadata(SECRET), 5000);
    expect(stopped.powerState).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect((await callUnary(client, client.destroyInstance, { instanceId: A }, bearerMetadata(SECRET), 5000)).powerState).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await owned.madeFor(A)).toBeUndefined();
  });

  it("answers INVALID_ARGUMENT for malformed ids and a missing spec", async () => {
    expect((await failure(create(testSpec("i-../../etc")))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(create(undefined))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(callUnary(client, client.startInstance, { instanceId: "" }, bearerMetadata(SECRET), 5000))).code).toBe(status.INVALID_ARGUMENT);
  });

  it("maps driver errors: InvalidSpec/InvalidImage → FAILED_PRECONDITION, NotFound → NOT_FOUND, others → INTERNAL", async () => {
    const badSpec = await failure(create({ ...testSpec(B), vcpus: 0 }));
    expect(badSpec.code).toBe(status.FAILED_PRECONDITION);
    expect(badSpec.details).toMatch(/^InvalidSpec: vcpus/);
    const badImage = await failure(create(testSpec(BAD_IMAGE)));
    expect(badImage.code).toBe(status.FAILED_PRECONDITION);
    expect(badImage.details).toMatch(/^InvalidImage: root disk/);
    const notFound = await failure(callUnary(client, client.rebootInstance, { instanceId: B }, bearerMetadata(SECRET), 5000));
    expect(notFound.code).toBe(status.NOT_FOUND);
    expect(notFound.details).toMatch(/^NotFound: /);
    const broken = await failure(create(testSpec(BROKEN)));
    expect(broken.code).toBe(status.INTERNAL);
    expect(broken.details).toMatch(/^Internal: virsh start failed/);
  });

  it("serializes calls for the same instance and runs different instances concurrently", async () => {
    const results = await Promise.all([create(testSpec(A)), create(testSpec(A)), create(testSpec(A)), create(testSpec(B))]);
    expect(results.map((r) => r.powerState)).toEqual(Array(4).fill(PowerState.POWER_STATE_RUNNING));
    expect(driver.maxInFlight.get(A)).toBe(1);
    expect(driver.maxTotalInFlight).toBe(2);
    expect((await driver.list()).map((d) => d.instanceId).sort()).toEqual([A, B]);
    expect(driver.used().vcpus).toBe(2);
  });

  it("passes ApplyHostState to the host network in revision order, malformed entries and all (the network leaves them out), UNAUTHENTICATED without the secret", async () => {
    const network: agent.HostNetworkState = {
      firewalls: [{ instanceId: A, ingress: [{ protocol: "tcp", fromPort: 22, toPort: 22, cidrs: ["198.18.0.0/15"] }], egress: [] }],
      elasticIps: [],
      metadata: [],
    };
    const state: agent.HostState = { revision: 5, instances: [], network };
    expect(await callUnary(client, client.applyHostState, state, bearerMetadata(SECRET), 5000)).toEqual({});
    expect(applied).toHaveLength(1);
    expect(applied[0]!.network!.firewalls[0]!.ingress[0]!.cidrs).toEqual(["198.18.0.0/15"]);
    // An older revision arriving late is acknowledged and ignored.
    expect(await callUnary(client, client.applyHostState, { ...state, revision: 4, network: { ...network, firewalls: [] } }, bearerMetadata(SECRET), 5000)).toEqual({});
    expect(applied).toHaveLength(1);

    const bad = { ...state, revision: 6, network: { ...network, firewalls: [{ ...network.firewalls[0]!, ingress: [{ protocol: "tcp", fromPort: 22, toPort: 22, cidrs: ["0.0.0.0/0; reboot"] }] }] } };
    expect(await callUnary(client, client.applyHostState, bad, bearerMetadata(SECRET), 5000)).toEqual({});
    expect(applied).toHaveLength(2);
    expect((await failure(callUnary(client, client.applyHostState, { ...state, revision: 7 }, bearerMetadata("nope"), 5000))).code).toBe(status.UNAUTHENTICATED);
    expect(applied).toHaveLength(2);
  });
});
