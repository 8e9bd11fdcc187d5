// The block-storage RPCs of the HostAgent server over the fake driver and
// in-memory stores: ids checked, live vs offline snapshots chosen by the
// domain's state, and every storage and driver failure mapped to its status.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { bearerMetadata, callUnary, issueCredential, newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeDriver } from "../src/driver/fake.js";
import { DetachPendingError, type DetachOptions } from "../src/driver/types.js";
import { KeyedMutex } from "../src/keyed-mutex.js";
import { UnmanagedNetwork } from "../src/network/types.js";
import { OwnershipRecords } from "../src/ownership.js";
import { serveHostAgent, type RunningServer } from "../src/server.js";
import { StorageError } from "../src/storage/types.js";
import { A, B, quietLogger, testPki, testSpec } from "./helpers.js";
import { MemoryStorage } from "./memory-storage.js";

const SECRET = "host-secret-0123456789";
const NO_QOS = { totalIopsSec: 0, totalBytesSec: 0, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 };

/** A guest that never lets go of `stuck`. */
class StuckDriver extends FakeDriver {
  stuck = "";
  override async detachVolume(instanceId: string, volumeId: string, opts: DetachOptions): Promise<void> {
    if (volumeId === this.stuck) throw new DetachPendingError(`the guest has not released ${volumeId} within ${opts.waitMs} ms`);
    return super.detachVolume(instanceId, volumeId, opts);
  }
}

describe("HostAgent block-storage RPCs", () => {
  let server: RunningServer;
  let client: agent.HostAgentClient;
  const driver = new StuckDriver({ capacity: { vcpus: 16, memoryMib: 16384, diskGib: 100 } });
  const storage = new MemoryStorage();
  const stateDir = mkdtempSync(join(tmpdir(), "cirrus-owned-"));

  beforeAll(async () => {
    const pki = await testPki();
    const own = await issueCredential(pki.ca, "h-0123456789abcdef0", ["127.0.0.1"]);
    server = await serveHostAgent("127.0.0.1:0", {
      driver,
      network: new UnmanagedNetwork(),
      hostSecret: () => SECRET,
      hostId: () => "h-0123456789abcdef0",
      owned: new OwnershipRecords(stateDir),
      locks: new KeyedMutex(),
      stopTimeoutMs: 1000,
      storage,
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

  const call = <Req, Res>(method: (req: Req, md: never, opts: never, cb: never) => unknown, req: Req) =>
    callUnary(client, method as never, req, bearerMetadata(SECRET), 5000) as Promise<Res>;
  const failure = (p: Promise<unknown>) => p.then(() => { throw new Error("call succeeded"); }, (e: unknown) => e as ServiceError);
  const createVolume = (volumeId: string, sizeGib = 1, snapshotId = "") => call<agent.CreateVolumeRequest, agent.VolumeStatus>(client.createVolume, { volumeId, sizeGib, snapshotId });
  const attach = (instanceId: string, volumeId: string, target = "vdb") => call<agent.AttachVolumeRequest, agent.VolumeStatus>(client.attachVolume, { instanceId, attachment: { volumeId, target, qos: NO_QOS } });
  const detach = (instanceId: string, volumeId: string) => call<agent.DetachVolumeRequest, agent.VolumeStatus>(client.detachVolume, { instanceId, volumeId, force: false, waitMs: 0 });
  const modify = (volumeId: string, sizeGib: number, instanceId = "", qos: agent.VolumeQos | undefined = NO_QOS) =>
    call<agent.ModifyVolumeRequest, agent.VolumeStatus>(client.modifyVolume, { volumeId, sizeGib, instanceId, qos });
  const snapshot = (volumeId: string, snapshotId: string, instanceId = "") => call<agent.CreateSnapshotRequest, agent.SnapshotStatus>(client.createSnapshot, { volumeId, snapshotId, instanceId });

  it("answers INVALID_ARGUMENT for malformed ids, targets, QoS and sizes", async () => {
    const v = newId("vol");
    const s = newId("snap");
    for (const p of [
      createVolume("vol-123"),
      createVolume(v, 1, "snap-x"),
      createVolume(v, 0),
      call(client.deleteVolume, { volumeId: "i-0123456789abcdef0" }),
      attach("i-1", v),
      attach(A, v, "vda"),
      attach(A, v, "sdb"),
      call(client.attachVolume, { instanceId: A, attachment: { volumeId: v, target: "vdb", qos: { ...NO_QOS, totalIopsSec: -1 } } }),
      call(client.attachVolume, { instanceId: A, attachment: undefined }),
      detach(A, "vol-../x"),
      snapshot(v, "snap-0"),
      snapshot(v, s, "nope"),
      call(client.deleteSnapshot, { snapshotId: v }),
      call(client.copySnapshot, { sourceSnapshotId: s, snapshotId: s }),
      modify("vol-1", 2),
      modify(v, 2, "i-1"),
      modify(v, 0),
      modify(v, 2, A, { ...NO_QOS, totalBytesSec: -1 }),
      modify(v, 2, A, { ...NO_QOS, totalIopsSecMaxLength: 10 }),
    ]) {
      expect((await failure(p)).code).toBe(status.INVALID_ARGUMENT);
    }
    expect(storage.sizes.size).toBe(0);
  });

  it("creates, attaches, detaches and deletes a volume, answering with its size; repeats are no-ops", async () => {
    const v = newId("vol");
    await call(client.createInstance, { spec: testSpec(A) });
    expect(await createVolume(v, 2)).toEqual({ volumeId: v, sizeBytes: 2 * 1024 ** 3, storedBytes: 0 });
    expect(await createVolume(v, 2)).toEqual({ volumeId: v, sizeBytes: 2 * 1024 ** 3, storedBytes: 0 });
    await attach(A, v);
    await attach(A, v);
    await detach(A, v);
    await detach(A, v);
    await detach(B, v); // no domain: nothing to detach
    expect(await call(client.deleteVolume, { volumeId: v })).toEqual({ volumeId: v, sizeBytes: 0, storedBytes: 0 });
    expect(await call(client.deleteVolume, { volumeId: v })).toEqual({ volumeId: v, sizeBytes: 0, storedBytes: 0 });
  });

  it("takes a snapshot live from the volume's file while the domain runs with it attached, offline otherwise; a retry of a taken one is a no-op", async () => {
    const [v, live, offline, unattached] = [newId("vol"), newId("snap"), newId("snap"), newId("snap")];
    await createVolume(v);
    await attach(A, v, "vdc");
    expect(await snapshot(v, live, A)).toEqual({ snapshotId: live, sizeBytes: 1024 ** 3, storedBytes: 0 });
    expect(storage.taken.get(live)?.from).toBe(storage.path(v));
    storage.inUse.add(v);
    // Taken already: neither the driver nor the store's InUse is reached again.
    expect((await snapshot(v, live, A)).snapshotId).toBe(live);
    // Without the instance the call is offline, and a guest holding the volume refuses it.
    const refused = await failure(snapshot(v, unattached));
    expect([refused.code, refused.details]).toEqual([status.FAILED_PRECONDITION, `InUse: ${v} is held`]);
    storage.inUse.delete(v);
    await call(client.stopInstance, { instanceId: A, force: true });
    await snapshot(v, offline, A);
    expect(storage.taken.get(offline)?.from).toBe(storage.path(v));
    await call(client.startInstance, { instanceId: A });
    await detach(A, v);
  });

  it("ModifyVolume grows a volume and sets its QoS through the driver when the named domain has it, offline otherwise; shrinks are refused", async () => {
    const [v, w] = [newId("vol"), newId("vol")];
    await createVolume(v);
    await createVolume(w);
    await attach(A, v, "vdf");
    const qos = { totalIopsSec: 3000, totalBytesSec: 2 * 1024 ** 2, totalIopsSecMax: 6000, totalIopsSecMaxLength: 10 };
    expect(await modify(v, 3, A, qos)).toEqual({ volumeId: v, sizeBytes: 3 * 1024 ** 3, storedBytes: 0 });
    expect(driver.attachment(A, v)?.qos).toEqual(qos);
    expect(await modify(v, 3, A, qos)).toMatchObject({ sizeBytes: 3 * 1024 ** 3 }); // the same again: no change
    // No QoS given: no limits.
    await modify(v, 3, A, undefined);
    expect(driver.attachment(A, v)?.qos).toEqual(NO_QOS);
    // Not attached to the named domain, or no instance named: the store grows it offline, refusing while a guest holds it.
    expect(await modify(w, 2, A, qos)).toMatchObject({ sizeBytes: 2 * 1024 ** 3 });
    expect(driver.attachment(A, w)).toBeUndefined();
    expect(await modify(w, 4)).toMatchObject({ sizeBytes: 4 * 1024 ** 3 });
    storage.inUse.add(w);
    expect((await failure(modify(w, 5))).details).toBe(`InUse: ${w} is held`);
    storage.inUse.delete(w);
    for (const [volumeId, instanceId] of [[v, A], [w, ""]] as const) {
      const shrink = await failure(modify(volumeId, 1, instanceId));
      expect(shrink.code).toBe(status.INVALID_ARGUMENT);
      expect(shrink.details).toMatch(/^InvalidArgument: .*can only grow/);
    }
    expect((await failure(modify(newId("vol"), 2))).code).toBe(status.NOT_FOUND);
    await detach(A, v);
  });

  it("maps storage errors: NotFound → NOT_FOUND, InUse/Conflict/Unsupported/InvalidImage → FAILED_PRECONDITION, Busy → UNAVAILABLE", async () => {
    const v = newId("vol");
    const missing = newId("vol");
    const s = newId("snap");
    const notFound = await failure(attach(A, missing));
    expect([notFound.code, notFound.details]).toEqual([status.NOT_FOUND, `NotFound: volume ${missing} does not exist`]);
    expect((await failure(createVolume(newId("vol"), 1, newId("snap")))).code).toBe(status.NOT_FOUND);
    expect((await failure(attach(newId("i"), (await createVolume(v)).volumeId))).code).toBe(status.NOT_FOUND);
    for (const [kind, code] of [["InUse", status.FAILED_PRECONDITION], ["Conflict", status.FAILED_PRECONDITION], ["Unsupported", status.FAILED_PRECONDITION], ["InvalidImage", status.FAILED_PRECONDITION], ["Busy", status.UNAVAILABLE], ["InvalidArgument", status.INVALID_ARGUMENT]] as const) {
      storage.failNext.set(s, new StorageError(kind, "as injected"));
      const err = await failure(call(client.deleteSnapshot, { snapshotId: s }));
      expect([err.code, err.details]).toEqual([code, `${kind}: as injected`]);
    }
    const copy = await failure(call(client.copySnapshot, { sourceSnapshotId: newId("snap"), snapshotId: s }));
    expect(copy.code).toBe(status.NOT_FOUND);
  });

  it("maps driver errors: a volume at another target or a taken target → FAILED_PRECONDITION Conflict, a guest not letting go → UNAVAILABLE Detaching", async () => {
    const [v, w] = [newId("vol"), newId("vol")];
    await createVolume(v);
    await createVolume(w);
    await attach(A, v, "vdd");
    const moved = await failure(attach(A, v, "vde"));
    expect(moved.code).toBe(status.FAILED_PRECONDITION);
    expect(moved.details).toMatch(/^Conflict: /);
    expect((await failure(attach(A, w, "vdd"))).details).toMatch(/^Conflict: .*holds another disk/);
    driver.stuck = v;
    const pending = await failure(detach(A, v));
    expect(pending.code).toBe(status.UNAVAILABLE);
    expect(pending.details).toMatch(/^Detaching: the guest has not released .* within 1000 ms/);
    driver.stuck = "";
    await detach(A, v);
  });

  it("CreateInstance gives the driver each volume's file, and refuses a spec naming a volume that does not exist", async () => {
    const v = newId("vol");
    await createVolume(v);
    const volumes = [{ volumeId: v, target: "vdb", qos: NO_QOS }];
    expect((await call<agent.CreateInstanceRequest, agent.InstanceStatus>(client.createInstance, { spec: { ...testSpec(B), volumes } })).powerState).toBe(agent.PowerState.POWER_STATE_RUNNING);
    // Attached by the definition already.
    await attach(B, v);
    const missing = newId("vol");
    const err = await failure(call(client.createInstance, { spec: { ...testSpec(newId("i")), volumes: [{ volumeId: missing, target: "vdb", qos: NO_QOS }] } }));
    expect([err.code, err.details]).toEqual([status.NOT_FOUND, `NotFound: volume ${missing} does not exist`]);
  });
});
