// Volumes and snapshots in the core, on a real Postgres with a recording
// agent port (what each step asks which host; the agents' own behaviour is
// tested against real qemu-img and libvirt in agents/host-agent and e2e).
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LifecycleStep } from "@cirrus/common/queue";
import { Ec2Error } from "../src/errors.js";
import { runLifecycleJob } from "../src/lifecycle.js";
import { operationNamed } from "../src/operations.js";
import { runInstancesOperation } from "../src/instances/run.js";
import { changeInstances } from "../src/instances/transitions.js";
import { instanceLifecycle } from "../src/instances/lifecycle.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
let hostA = "";
let hostB = "";
const calls: { method: string; host: string; args: unknown }[] = [];

beforeAll(async () => {
  t = await testCore({ CIRRUS_ZONES: "lab-1a,lab-1b" });
  imageId = await addImage(t.core);
  hostA = await addHost(t.core, "a", { vcpus: 8, memoryMib: 8192, diskGib: 80 }, "lab-1a");
  hostB = await addHost(t.core, "b", { vcpus: 8, memoryMib: 8192, diskGib: 80 }, "lab-1b");
  const agents = t.core.agents as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const method of ["createVolume", "deleteVolume", "attachVolume", "detachVolume", "modifyVolume", "createSnapshot", "deleteSnapshot", "copySnapshot", "destroyInstance"]) {
    const original = agents[method]!;
    agents[method] = async (host, ...args) => {
      calls.push({ method, host: (host as { id: string }).id, args: args.length === 1 ? args[0] : args });
      return original(host, ...args);
    };
  }
}, 60_000);
afterAll(() => t?.close());

const call = <Res>(name: string, req: object, accountId?: string): Promise<Res> => {
  const op = operationNamed(name)!;
  return op.handler(accountId ? t.ctx({ accountId, operator: false }) : t.ctx(), op.request.fromPartial(req as never));
};

/** Runs every step enqueued since `from` (and those they enqueue) to completion. */
async function drain(from: number): Promise<void> {
  for (let i = from; i < t.enqueued.length; i++) {
    const report = await runLifecycleJob(t.core, t.enqueued[i] as LifecycleStep[], true);
    expect(report.retry).toEqual([]);
  }
}

async function refusal(p: Promise<unknown>): Promise<Ec2Error> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Ec2Error);
  return err as Ec2Error;
}

const volume = async (id: string) => (await call<compute.DescribeVolumesResponse>("DescribeVolumes", { VolumeIds: [id] })).Volumes[0]!;
const rowCount = async (table: string) => Number((await t.core.db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);

async function runningInstance(zone: string): Promise<string> {
  const from = t.enqueued.length;
  const res = await runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, Placement: { AvailabilityZone: zone } }));
  for (const batch of t.enqueued.slice(from)) await instanceLifecycle.run(t.core, batch);
  return res.Instances[0]!.InstanceId;
}

describe("volumes", () => {
  it("CreateVolume is creating, then available once a host of its zone made it; types get EC2's IOPS and throughput", async () => {
    const from = t.enqueued.length;
    const gp2 = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1b", Size: 10, TagSpecifications: [{ ResourceType: "volume", Tags: [{ Key: "Name", Value: "data" }] }] });
    expect(gp2).toMatchObject({ State: "creating", Size: 10, VolumeType: "gp2", Iops: 100, AvailabilityZone: "lab-1b", Encrypted: false, Tags: [{ Key: "Name", Value: "data" }] });
    await drain(from);
    expect((await volume(gp2.VolumeId)).State).toBe("available");
    expect(calls.find((c) => c.method === "createVolume" && (c.args as { volumeId: string }).volumeId === gp2.VolumeId)).toMatchObject({ host: hostB, args: { sizeGib: 10, snapshotId: "" } });
    const statuses = async (filters: object[] = []) => (await call<compute.DescribeVolumeStatusResponse>("DescribeVolumeStatus", { VolumeIds: [gp2.VolumeId], Filters: filters })).VolumeStatuses;
    expect(await statuses()).toEqual([{
      Actions: [], Events: [], AvailabilityZone: "lab-1b", VolumeId: gp2.VolumeId,
      VolumeStatus: { Status: "ok", Details: [{ Name: "io-enabled", Status: "passed" }, { Name: "io-performance", Status: "not-applicable" }] },
    }]);
    expect(await statuses([{ Name: "volume-status.status", Values: ["impaired"] }])).toEqual([]);
    const gp3 = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 100, VolumeType: "gp3" });
    expect(gp3).toMatchObject({ Iops: 3000, Throughput: 125 });
    const io2 = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 10, VolumeType: "io2", Iops: 5000 });
    expect(io2).toMatchObject({ Iops: 5000, Throughput: undefined });
  });

  it("a ClientToken makes CreateVolume idempotent, and a reuse with other parameters is refused", async () => {
    const a = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 3, ClientToken: "tok-1" });
    const b = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 3, ClientToken: "tok-1" });
    expect(b.VolumeId).toBe(a.VolumeId);
    expect((await refusal(call("CreateVolume", { AvailabilityZone: "lab-1a", Size: 4, ClientToken: "tok-1" }))).code).toBe("IdempotentParameterMismatch");
  });

  it("refuses sizes, IOPS, types and zones out of range, writing nothing", async () => {
    const before = await rowCount("volumes");
    const cases: [object, string][] = [
      [{ AvailabilityZone: "lab-1a", Size: 0 }, "InvalidParameterValue"],
      [{ AvailabilityZone: "lab-1a", Size: 16_385 }, "InvalidParameterValue"],
      [{ AvailabilityZone: "lab-1a", Size: 10, VolumeType: "gp4" }, "InvalidParameterValue"],
      [{ AvailabilityZone: "lab-1a", Size: 10, VolumeType: "io1" }, "MissingParameter"],
      [{ AvailabilityZone: "lab-1a", Size: 10, VolumeType: "io1", Iops: 501 }, "InvalidParameterValue"],
      [{ AvailabilityZone: "lab-1a", Size: 10, VolumeType: "gp2", Iops: 300 }, "InvalidParameterCombination"],
      [{ AvailabilityZone: "lab-1a", Size: 10, VolumeType: "gp3", Throughput: 1001 }, "InvalidParameterValue"],
      [{ AvailabilityZone: "lab-1a", Size: 100, VolumeType: "st1" }, "InvalidParameterValue"],
      [{ AvailabilityZone: "lab-9z", Size: 10 }, "InvalidZone.NotFound"],
      [{ AvailabilityZone: "lab-1a" }, "MissingParameter"],
      [{ AvailabilityZone: "lab-1a", Size: 10, Encrypted: true }, "Unsupported"],
      [{ AvailabilityZone: "lab-1a", SnapshotId: "snap-00000000000000000" }, "InvalidSnapshot.NotFound"],
      [{ AvailabilityZone: "lab-1a", SnapshotId: "snap-1" }, "InvalidSnapshot.Malformed"],
    ];
    for (const [req, code] of cases) expect([req, (await refusal(call("CreateVolume", req))).code]).toEqual([req, code]);
    expect(await rowCount("volumes")).toBe(before);
  });

  it("attaches to an instance of its zone only, at a free virtio target with its QoS; detaches; DeleteVolume refuses while attached", async () => {
    const instanceId = await runningInstance("lab-1a");
    const other = await runningInstance("lab-1b");
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 8, VolumeType: "gp3", Iops: 4000, Throughput: 200 });
    await drain(from);
    expect(calls.find((c) => c.method === "createVolume" && (c.args as { volumeId: string }).volumeId === v.VolumeId)?.host).toBe(hostA);
    expect((await refusal(call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: other, Device: "/dev/sdf" }))).code).toBe("InvalidVolume.ZoneMismatch");
    expect((await refusal(call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: instanceId, Device: "/dev/vda" }))).code).toBe("InvalidParameterValue");
    expect((await refusal(call("DetachVolume", { VolumeId: v.VolumeId }))).code).toBe("IncorrectState");
    from = t.enqueued.length;
    const att = await call<compute.VolumeAttachment>("AttachVolume", { VolumeId: v.VolumeId, InstanceId: instanceId, Device: "/dev/sdf" });
    expect(att).toMatchObject({ State: "attaching", InstanceId: instanceId, Device: "/dev/sdf", VolumeId: v.VolumeId, DeleteOnTermination: false });
    expect((await refusal(call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: instanceId, Device: "/dev/sdg" }))).code).toBe("VolumeInUse");
    await drain(from);
    const attached = await volume(v.VolumeId);
    expect(attached).toMatchObject({ State: "in-use", Attachments: [{ State: "attached", InstanceId: instanceId }] });
    const host = (await t.core.db.query("SELECT host_id FROM instances WHERE id = $1", [instanceId])).rows[0].host_id;
    expect(calls.find((c) => c.method === "attachVolume" && (c.args as [string, { volumeId: string }])[1].volumeId === v.VolumeId)).toEqual({
      method: "attachVolume", host,
      args: [instanceId, { volumeId: v.VolumeId, target: "vdb", qos: { totalIopsSec: 4000, totalBytesSec: 200 * 1024 * 1024, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 } }],
    });
    expect((await refusal(call("DeleteVolume", { VolumeId: v.VolumeId }))).code).toBe("VolumeInUse");
    expect((await refusal(call("DetachVolume", { VolumeId: v.VolumeId, InstanceId: other }))).code).toBe("InvalidAttachment.NotFound");
    // A second volume gets the next target.
    from = t.enqueued.length;
    const w = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    await drain(from);
    await call("AttachVolume", { VolumeId: w.VolumeId, InstanceId: instanceId, Device: "/dev/sdg" });
    expect((await t.core.db.query("SELECT target FROM volumes WHERE id = $1", [w.VolumeId])).rows[0].target).toBe("vdc");
    from = t.enqueued.length;
    expect(await call<compute.VolumeAttachment>("DetachVolume", { VolumeId: v.VolumeId })).toMatchObject({ State: "detaching" });
    await drain(from);
    expect(await volume(v.VolumeId)).toMatchObject({ State: "available", Attachments: [] });
    from = t.enqueued.length;
    await call("DeleteVolume", { VolumeId: v.VolumeId });
    await drain(from);
    expect((await refusal(volume(v.VolumeId))).code).toBe("InvalidVolume.NotFound");
  });

  it("a detach the guest does not finish stays detaching and is never given up", async () => {
    const instanceId = await runningInstance("lab-1a");
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    await drain(from);
    from = t.enqueued.length;
    await call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: instanceId, Device: "/dev/sdf" });
    await drain(from);
    const agents = t.core.agents;
    const saved = agents.detachVolume;
    agents.detachVolume = async () => {
      throw Object.assign(new Error("Detaching: the guest has not released vdb"), { code: 14 });
    };
    try {
      from = t.enqueued.length;
      await call("DetachVolume", { VolumeId: v.VolumeId });
      const report = await runLifecycleJob(t.core, t.enqueued[from]!, true);
      expect(report.settled).toHaveLength(1);
      expect(await volume(v.VolumeId)).toMatchObject({ State: "in-use", Attachments: [{ State: "detaching" }] });
    } finally {
      agents.detachVolume = saved;
    }
  });

  it("terminating an instance detaches its volumes, and deletes those marked DeleteOnTermination", async () => {
    const instanceId = await runningInstance("lab-1a");
    let from = t.enqueued.length;
    const keep = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    const drop = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    await drain(from);
    from = t.enqueued.length;
    await call("AttachVolume", { VolumeId: keep.VolumeId, InstanceId: instanceId, Device: "/dev/sdf" });
    await call("AttachVolume", { VolumeId: drop.VolumeId, InstanceId: instanceId, Device: "/dev/sdg" });
    await drain(from);
    await t.core.db.query("UPDATE volumes SET delete_on_termination = true WHERE id = $1", [drop.VolumeId]);
    from = t.enqueued.length;
    await changeInstances(t.ctx(), "terminate", [instanceId]);
    await drain(from);
    expect(await volume(keep.VolumeId)).toMatchObject({ State: "available", Attachments: [] });
    expect((await refusal(volume(drop.VolumeId))).code).toBe("InvalidVolume.NotFound");
    expect(calls.some((c) => c.method === "deleteVolume" && c.args === drop.VolumeId)).toBe(true);
  });
});

describe("ModifyVolume", () => {
  it("grows and re-tunes an attached volume through its instance's host; the volume takes the new values once done", async () => {
    const instanceId = await runningInstance("lab-1a");
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 10 });
    await drain(from);
    from = t.enqueued.length;
    await call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: instanceId, Device: "/dev/sdf" });
    await drain(from);
    for (const [req, code] of [
      [{ Size: 9 }, "InvalidParameterValue"], [{}, "InvalidParameterValue"], [{ Size: 10 }, "InvalidParameterValue"],
      [{ VolumeType: "io1" }, "MissingParameter"], [{ VolumeType: "gp3", Throughput: 2000 }, "InvalidParameterValue"], [{ Iops: 500 }, "InvalidParameterCombination"],
    ] as const) expect([req, (await refusal(call("ModifyVolume", { VolumeId: v.VolumeId, ...req }))).code]).toEqual([req, code]);
    from = t.enqueued.length;
    const res = await call<compute.ModifyVolumeResponse>("ModifyVolume", { VolumeId: v.VolumeId, Size: 20, VolumeType: "gp3", Throughput: 250 });
    expect(res.VolumeModification).toMatchObject({ ModificationState: "modifying", OriginalSize: 10, OriginalVolumeType: "gp2", OriginalIops: 100, TargetSize: 20, TargetVolumeType: "gp3", TargetIops: 3000, TargetThroughput: 250 });
    expect((await refusal(call("ModifyVolume", { VolumeId: v.VolumeId, Size: 30 }))).code).toBe("IncorrectModificationState");
    expect(await volume(v.VolumeId)).toMatchObject({ Size: 10, VolumeType: "gp2" });
    await drain(from);
    const host = (await t.core.db.query("SELECT host_id FROM instances WHERE id = $1", [instanceId])).rows[0].host_id;
    expect(calls.find((c) => c.method === "modifyVolume")).toEqual({
      method: "modifyVolume", host, args: { volumeId: v.VolumeId, sizeGib: 20, instanceId, qos: { totalIopsSec: 3000, totalBytesSec: 250 * 1024 * 1024, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 } },
    });
    expect(await volume(v.VolumeId)).toMatchObject({ Size: 20, VolumeType: "gp3", Iops: 3000, Throughput: 250, State: "in-use" });
    const [mod] = (await call<compute.DescribeVolumesModificationsResponse>("DescribeVolumesModifications", { VolumeIds: [v.VolumeId] })).VolumesModifications;
    expect(mod).toMatchObject({ ModificationState: "completed", Progress: 100, TargetSize: 20 });
    expect((await call<compute.DescribeVolumesModificationsResponse>("DescribeVolumesModifications", { Filters: [{ Name: "modification-state", Values: ["modifying"] }] })).VolumesModifications).toEqual([]);
    // EC2's answers for a volume never modified, and for one that does not exist.
    const plain = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    expect((await refusal(call("DescribeVolumesModifications", { VolumeIds: [plain.VolumeId] }))).code).toBe("InvalidVolumeModification.NotFound");
    expect((await refusal(call("DescribeVolumesModifications", { VolumeIds: ["vol-00000000000000000"] }))).code).toBe("InvalidVolume.NotFound");
  });
});

describe("snapshots", () => {
  it("CreateSnapshot is pending, then completed; a volume from it takes its size; a copy is independent; deletes are refused while in use", async () => {
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 6 });
    await drain(from);
    from = t.enqueued.length;
    const s = await call<compute.Snapshot>("CreateSnapshot", { VolumeId: v.VolumeId, Description: "first" });
    expect(s).toMatchObject({ State: "pending", Progress: "0%", VolumeId: v.VolumeId, VolumeSize: 6, OwnerId: "123456789012", Description: "first" });
    expect((await refusal(call("DeleteSnapshot", { SnapshotId: s.SnapshotId }))).code).toBe("IncorrectState");
    expect((await refusal(call("CreateVolume", { AvailabilityZone: "lab-1a", SnapshotId: s.SnapshotId }))).code).toBe("IncorrectState");
    await drain(from);
    const [done] = (await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", { SnapshotIds: [s.SnapshotId] })).Snapshots;
    expect(done).toMatchObject({ State: "completed", Progress: "100%" });
    expect((await refusal(call("CreateVolume", { AvailabilityZone: "lab-1a", SnapshotId: s.SnapshotId, Size: 5 }))).code).toBe("InvalidParameterValue");
    from = t.enqueued.length;
    const restored = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1b", SnapshotId: s.SnapshotId });
    expect(restored).toMatchObject({ Size: 6, SnapshotId: s.SnapshotId });
    // While the volume is being made from it, the snapshot cannot go.
    expect((await refusal(call("DeleteSnapshot", { SnapshotId: s.SnapshotId }))).code).toBe("InvalidSnapshot.InUse");
    await drain(from);
    expect(calls.find((c) => c.method === "createVolume" && (c.args as { volumeId: string }).volumeId === restored.VolumeId)).toMatchObject({ host: hostB, args: { snapshotId: s.SnapshotId, sizeGib: 6 } });
    expect((await refusal(call("CopySnapshot", { SourceSnapshotId: s.SnapshotId, SourceRegion: "elsewhere-1" }))).code).toBe("InvalidParameterValue");
    from = t.enqueued.length;
    const copy = await call<compute.CopySnapshotResponse>("CopySnapshot", { SourceSnapshotId: s.SnapshotId, SourceRegion: t.core.config.CIRRUS_REGION, DestinationRegion: t.core.config.CIRRUS_REGION, PresignedUrl: "https://x" });
    await drain(from);
    const [copied] = (await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", { SnapshotIds: [copy.SnapshotId] })).Snapshots;
    expect(copied).toMatchObject({ State: "completed", VolumeId: "vol-ffffffff", VolumeSize: 6, Description: `[Copied ${s.SnapshotId} from ${t.core.config.CIRRUS_REGION}]` });
    expect(calls.find((c) => c.method === "copySnapshot")?.args).toEqual({ sourceSnapshotId: s.SnapshotId, snapshotId: copy.SnapshotId });
    from = t.enqueued.length;
    await call("DeleteSnapshot", { SnapshotId: s.SnapshotId });
    expect((await refusal(call("DescribeSnapshots", { SnapshotIds: [s.SnapshotId] }))).code).toBe("InvalidSnapshot.NotFound");
    await drain(from);
    expect(calls.some((c) => c.method === "deleteSnapshot" && c.args === s.SnapshotId)).toBe(true);
  });

  it("a snapshot of an attached volume is taken by its instance's host, naming the instance", async () => {
    const instanceId = await runningInstance("lab-1b");
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1b", Size: 1 });
    await drain(from);
    from = t.enqueued.length;
    await call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: instanceId, Device: "/dev/sdh" });
    await drain(from);
    from = t.enqueued.length;
    const s = await call<compute.Snapshot>("CreateSnapshot", { VolumeId: v.VolumeId });
    await drain(from);
    expect(calls.find((c) => c.method === "createSnapshot" && (c.args as { snapshotId: string }).snapshotId === s.SnapshotId)).toEqual({
      method: "createSnapshot", host: hostB, args: { volumeId: v.VolumeId, snapshotId: s.SnapshotId, instanceId },
    });
  });

  it("another account sees none of them and can use none of them", async () => {
    const from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    await drain(from);
    const s = await call<compute.Snapshot>("CreateSnapshot", { VolumeId: v.VolumeId });
    const stranger = "210987654321";
    expect((await call<compute.DescribeVolumesResponse>("DescribeVolumes", {}, stranger)).Volumes).toEqual([]);
    expect((await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", {}, stranger)).Snapshots).toEqual([]);
    expect((await refusal(call("DeleteVolume", { VolumeId: v.VolumeId }, stranger))).code).toBe("InvalidVolume.NotFound");
    expect((await refusal(call("CreateSnapshot", { VolumeId: v.VolumeId }, stranger))).code).toBe("InvalidVolume.NotFound");
    expect((await refusal(call("CreateVolume", { AvailabilityZone: "lab-1a", SnapshotId: s.SnapshotId }, stranger))).code).toBe("InvalidSnapshot.NotFound");
    expect((await refusal(call("DeleteSnapshot", { SnapshotId: s.SnapshotId }, stranger))).code).toBe("InvalidSnapshot.NotFound");
  });
});

describe("snapshot sharing", () => {
  it("a snapshot shared with an account (or all) is seen, restored and copied by it, never changed by it; reset makes it private", async () => {
    const stranger = "210987654321";
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    await drain(from);
    from = t.enqueued.length;
    const s = await call<compute.Snapshot>("CreateSnapshot", { VolumeId: v.VolumeId, TagSpecifications: [{ ResourceType: "snapshot", Tags: [{ Key: "k", Value: "v" }] }] });
    await drain(from);
    const seen = async (accountId: string) => (await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", { SnapshotIds: [s.SnapshotId] }, accountId).catch(() => ({ Snapshots: [] }))).Snapshots;
    expect(await seen(stranger)).toEqual([]);
    expect((await refusal(call("ModifySnapshotAttribute", { SnapshotId: s.SnapshotId, CreateVolumePermission: { Add: [{ UserId: "12" }] } }))).code).toBe("InvalidParameterValue");
    expect((await refusal(call("ModifySnapshotAttribute", { SnapshotId: s.SnapshotId }))).code).toBe("MissingParameter");
    await call("ModifySnapshotAttribute", { SnapshotId: s.SnapshotId, Attribute: "createVolumePermission", OperationType: "add", UserIds: [stranger] });
    expect((await call<compute.DescribeSnapshotAttributeResponse>("DescribeSnapshotAttribute", { SnapshotId: s.SnapshotId, Attribute: "createVolumePermission" })).CreateVolumePermissions)
      .toEqual([{ Group: "", UserId: stranger }]);
    const [shared] = await seen(stranger);
    expect(shared).toMatchObject({ SnapshotId: s.SnapshotId, OwnerId: "123456789012", Tags: [] });
    expect((await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", { RestorableByUserIds: ["self"], SnapshotIds: [s.SnapshotId] }, stranger)).Snapshots).toHaveLength(1);
    expect((await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", { OwnerIds: ["self"] }, stranger)).Snapshots).toEqual([]);
    from = t.enqueued.length;
    const theirs = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", SnapshotId: s.SnapshotId }, stranger);
    const copy = await call<compute.CopySnapshotResponse>("CopySnapshot", { SourceSnapshotId: s.SnapshotId, SourceRegion: t.core.config.CIRRUS_REGION }, stranger);
    await drain(from);
    expect((await call<compute.DescribeSnapshotsResponse>("DescribeSnapshots", { SnapshotIds: [copy.SnapshotId] }, stranger)).Snapshots[0]).toMatchObject({ OwnerId: stranger, State: "completed" });
    expect((await call<compute.DescribeVolumesResponse>("DescribeVolumes", { VolumeIds: [theirs.VolumeId] }, stranger)).Volumes[0]!.State).toBe("available");
    for (const [name, req] of [["DeleteSnapshot", { SnapshotId: s.SnapshotId }], ["ModifySnapshotAttribute", { SnapshotId: s.SnapshotId, OperationType: "add", GroupNames: ["all"] }],
      ["DescribeSnapshotAttribute", { SnapshotId: s.SnapshotId, Attribute: "createVolumePermission" }]] as const) {
      expect((await refusal(call(name, req, stranger))).code).toBe("InvalidSnapshot.NotFound");
    }
    await call("ResetSnapshotAttribute", { SnapshotId: s.SnapshotId, Attribute: "createVolumePermission" });
    expect(await seen(stranger)).toEqual([]);
    await call("ModifySnapshotAttribute", { SnapshotId: s.SnapshotId, CreateVolumePermission: { Add: [{ Group: "all" }] } });
    expect(await seen("333333333333")).toHaveLength(1);
  });
});
