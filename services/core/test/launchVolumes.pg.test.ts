// RunInstances' block device mappings, ModifyInstanceAttribute's shutdown
// behaviour and DeleteOnTermination, and a guest that powers itself off, on
// a real Postgres with a recording agent port.
import { agent, compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LifecycleStep } from "@cirrus/common/queue";
import { Ec2Error } from "../src/errors.js";
import { heartbeat } from "../src/hosts.js";
import { runLifecycleJob } from "../src/lifecycle.js";
import { operationNamed } from "../src/operations.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
let hostId = "";
const created: { host: string; req: agent.CreateVolumeRequest }[] = [];
const specs: agent.InstanceSpec[] = [];

beforeAll(async () => {
  t = await testCore({ CIRRUS_DRIFT_GRACE_MS: "0" });
  imageId = await addImage(t.core);
  hostId = await addHost(t.core, "a", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
  const agents = t.core.agents;
  const createVolume = agents.createVolume;
  agents.createVolume = async (host, req) => {
    created.push({ host: host.id, req });
    return createVolume(host, req);
  };
  agents.createInstance = async (_host, spec) => void specs.push(spec);
}, 60_000);
afterAll(() => t?.close());

const call = <Res>(name: string, req: object): Promise<Res> => {
  const op = operationNamed(name)!;
  return op.handler(t.ctx(), op.request.fromPartial(req as never));
};

async function drain(from: number): Promise<void> {
  for (let i = from; i < t.enqueued.length; i++) expect((await runLifecycleJob(t.core, t.enqueued[i] as LifecycleStep[], true)).retry).toEqual([]);
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Ec2Error);
  return (err as Ec2Error).code;
}

const instance = async (id: string) => (await call<compute.DescribeInstancesResponse>("DescribeInstances", { InstanceIds: [id] })).Reservations[0]!.Instances[0]!;

describe("RunInstances block device mappings", () => {
  it("makes each instance its volumes on its host before defining the domain with them, attaching them at launch", async () => {
    const from = t.enqueued.length;
    const res = await call<compute.Reservation>("RunInstances", {
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 2,
      BlockDeviceMappings: [
        { DeviceName: "/dev/vda", Ebs: { VolumeSize: 4 } },
        { DeviceName: "/dev/sdf", Ebs: { VolumeSize: 2, VolumeType: "gp3" } },
        { DeviceName: "/dev/sdg", Ebs: { VolumeSize: 1, DeleteOnTermination: false } },
      ],
    });
    const [i1, i2] = res.Instances;
    expect(i1!.BlockDeviceMappings.map((m) => [m.DeviceName, m.Ebs!.Status, m.Ebs!.DeleteOnTermination])).toEqual([["/dev/sdf", "attaching", true], ["/dev/sdg", "attaching", false]]);
    await drain(from);
    const spec = specs.find((s) => s.instanceId === i1!.InstanceId)!;
    expect(spec.rootDiskGib).toBe(4);
    expect(spec.volumes.map((v) => [v.target, v.qos?.totalIopsSec])).toEqual([["vdb", 3000], ["vdc", 100]]);
    const mine = created.filter((c) => spec.volumes.some((v) => v.volumeId === c.req.volumeId));
    expect(mine.map((c) => [c.host, c.req.sizeGib])).toEqual([[hostId, 2], [hostId, 1]]);
    const after = await instance(i1!.InstanceId);
    expect(after.State!.Name).toBe("running");
    expect(after.BlockDeviceMappings.map((m) => m.Ebs!.Status)).toEqual(["attached", "attached"]);
    expect((await call<compute.InstanceAttribute>("DescribeInstanceAttribute", { InstanceId: i1!.InstanceId, Attribute: "blockDeviceMapping" })).BlockDeviceMappings).toHaveLength(2);
    const keep = after.BlockDeviceMappings[1]!.Ebs!.VolumeId;
    const drop = after.BlockDeviceMappings[0]!.Ebs!.VolumeId;
    // Terminating deletes the DeleteOnTermination volume and leaves the other available.
    const kill = t.enqueued.length;
    await call("TerminateInstances", { InstanceIds: [i1!.InstanceId, i2!.InstanceId] });
    await drain(kill);
    const left = (await call<compute.DescribeVolumesResponse>("DescribeVolumes", { VolumeIds: [keep] })).Volumes[0]!;
    expect(left).toMatchObject({ State: "available", Attachments: [] });
    expect(await refusal(call("DescribeVolumes", { VolumeIds: [drop] }))).toBe("InvalidVolume.NotFound");
  });

  it("refuses mappings it cannot honour, writing nothing", async () => {
    const count = async () => Number((await t.core.db.query("SELECT (SELECT count(*) FROM instances) + (SELECT count(*) FROM volumes) AS n")).rows[0].n);
    const before = await count();
    const run = (BlockDeviceMappings: object[]) => call("RunInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, BlockDeviceMappings });
    expect(await refusal(run([{ DeviceName: "/dev/sdb", VirtualName: "ephemeral0" }]))).toBe("InvalidBlockDeviceMapping");
    expect(await refusal(run([{ DeviceName: "/dev/sdf", Ebs: { VolumeSize: 1, Encrypted: true } }]))).toBe("Unsupported");
    expect(await refusal(run([{ DeviceName: "/dev/sdf", Ebs: { VolumeSize: 10, VolumeType: "io1" } }]))).toBe("MissingParameter");
    expect(await refusal(run([{ DeviceName: "/dev/sdf", Ebs: {} }]))).toBe("MissingParameter");
    expect(await refusal(run([{ DeviceName: "/dev/sdf", Ebs: { VolumeSize: 1 } }, { DeviceName: "/dev/sdf", Ebs: { VolumeSize: 1 } }]))).toBe("InvalidBlockDeviceMapping");
    expect(await refusal(run([{ DeviceName: "/dev/hda", Ebs: { VolumeSize: 1 } }]))).toBe("InvalidBlockDeviceMapping");
    expect(await refusal(run([{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 0 } }]))).toBe("InvalidParameterValue");
    expect(await refusal(run([{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 8, VolumeType: "gp3" } }]))).toBe("Unsupported");
    expect(await refusal(run([{ DeviceName: "/dev/sdf", Ebs: { SnapshotId: "snap-00000000000000000" } }]))).toBe("InvalidSnapshot.NotFound");
    expect(await count()).toBe(before);
  });
});

describe("instance store", () => {
  it("a d size gets its scratch disks on its host: the spec names them, the host's disk books count them", async () => {
    const big = await addHost(t.core, "big", { vcpus: 16, memoryMib: 65536, diskGib: 500 });
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus WHERE id <> $1", [big]);
    const from = t.enqueued.length;
    const res = await call<compute.Reservation>("RunInstances", { ImageId: imageId, InstanceType: "m5d.large", MinCount: 1, MaxCount: 1, BlockDeviceMappings: [{ DeviceName: "/dev/sdb", VirtualName: "ephemeral0" }] });
    await drain(from);
    const spec = specs.find((s) => s.instanceId === res.Instances[0]!.InstanceId)!;
    expect(spec.instanceStore).toEqual([{ name: "ephemeral0", target: "vdx", sizeGib: 75 }]);
    expect(spec.rootDiskGib).toBe(1);
    expect((await t.core.db.query("SELECT used_disk_gib FROM hosts WHERE id = $1", [big])).rows[0].used_disk_gib).toBe(76);
    expect(await refusal(call("RunInstances", { ImageId: imageId, InstanceType: "m5d.large", MinCount: 1, MaxCount: 1, BlockDeviceMappings: [{ DeviceName: "/dev/sdc", VirtualName: "ephemeral1" }] }))).toBe("InvalidBlockDeviceMapping");
    expect(await refusal(call("RunInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, BlockDeviceMappings: [{ DeviceName: "/dev/sdb", VirtualName: "ephemeral0" }] }))).toBe("InvalidBlockDeviceMapping");
    const [type] = (await call<compute.DescribeInstanceTypesResponse>("DescribeInstanceTypes", { InstanceTypes: ["m5d.large"] })).InstanceTypes;
    expect(type).toMatchObject({ InstanceStorageSupported: true, InstanceStorageInfo: { TotalSizeInGB: 75, Disks: [{ SizeInGB: 75, Count: 1, Type: "ssd" }] } });
    await t.core.db.query("UPDATE hosts SET used_vcpus = 0 WHERE id <> $1", [big]);
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus WHERE id = $1", [big]);
  });
});

describe("instance-initiated shutdown", () => {
  async function launch(behavior?: string): Promise<string> {
    const from = t.enqueued.length;
    const res = await call<compute.Reservation>("RunInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, ...(behavior ? { InstanceInitiatedShutdownBehavior: behavior } : {}) });
    await drain(from);
    return res.Instances[0]!.InstanceId;
  }
  const poweredOff = (ids: string[], absent: string[] = [], inTransit: string[] = []) => heartbeat(t.core, {
    hostId, appliedRevision: 0,
    instances: ids.filter((id) => !absent.includes(id)).map((instanceId) => ({
      instanceId, powerState: inTransit.includes(instanceId) ? agent.PowerState.POWER_STATE_OTHER : agent.PowerState.POWER_STATE_SHUT_OFF,
    })),
  });

  it("a guest that powers itself off is stopped or terminated as its behaviour says; a missing domain never terminates", async () => {
    const stops = await launch();
    const terminates = await launch("terminate");
    const missing = await launch("terminate");
    await new Promise((r) => setTimeout(r, 20));
    // On its way to shut off (libvirt's "in shutdown"): judged once it is there.
    await poweredOff([stops, terminates, missing], [missing], [terminates]);
    expect((await instance(terminates)).State!.Name).toBe("running");
    await poweredOff([stops, terminates, missing], [missing]);
    expect((await instance(stops)).State!.Name).toBe("stopped");
    expect((await instance(missing)).State!.Name).toBe("stopped");
    const gone = await instance(terminates);
    expect(gone.State!.Name).toBe("shutting-down");
    expect(gone.StateReason).toEqual({ Code: "Client.InstanceInitiatedShutdown", Message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown" });
    // The sweeper finds the terminate step and it finishes.
    const { batches } = await (await import("../src/instances/lifecycle.js")).instanceLifecycle.stale(t.core, 0, 100, "");
    for (const b of batches) await runLifecycleJob(t.core, b, true);
    expect((await instance(terminates)).State!.Name).toBe("terminated");
  });

  it("ModifyInstanceAttribute changes the behaviour, one attribute at a time", async () => {
    const id = await launch();
    const attr = async () => (await call<compute.InstanceAttribute>("DescribeInstanceAttribute", { InstanceId: id, Attribute: "instanceInitiatedShutdownBehavior" })).InstanceInitiatedShutdownBehavior!.Value;
    expect(await attr()).toBe("stop");
    await call("ModifyInstanceAttribute", { InstanceId: id, InstanceInitiatedShutdownBehavior: { Value: "terminate" } });
    expect(await attr()).toBe("terminate");
    await call("ModifyInstanceAttribute", { InstanceId: id, Attribute: "instanceInitiatedShutdownBehavior", Value: "stop" });
    expect(await attr()).toBe("stop");
    expect(await refusal(call("ModifyInstanceAttribute", { InstanceId: id, Attribute: "instanceInitiatedShutdownBehavior", Value: "hibernate" }))).toBe("InvalidParameterValue");
    expect(await refusal(call("ModifyInstanceAttribute", { InstanceId: id, Attribute: "instanceType", Value: "t2.micro" }))).toBe("Unsupported");
    expect(await refusal(call("ModifyInstanceAttribute", { InstanceId: id, InstanceInitiatedShutdownBehavior: { Value: "stop" }, Attribute: "instanceInitiatedShutdownBehavior", Value: "stop" }))).toBe("InvalidParameterCombination");
    expect(await refusal(call("ModifyInstanceAttribute", { InstanceId: id }))).toBe("MissingParameter");
    expect(await refusal(call("ModifyInstanceAttribute", { InstanceId: id, BlockDeviceMappings: [{ DeviceName: "/dev/sdf", Ebs: { DeleteOnTermination: true } }] }))).toBe("InvalidInstanceAttributeValue");
  });

  it("ModifyInstanceAttribute sets an attached volume's DeleteOnTermination by device", async () => {
    const id = await launch();
    let from = t.enqueued.length;
    const v = await call<compute.Volume>("CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
    await drain(from);
    from = t.enqueued.length;
    await call("AttachVolume", { VolumeId: v.VolumeId, InstanceId: id, Device: "/dev/sdf" });
    await drain(from);
    await call("ModifyInstanceAttribute", { InstanceId: id, BlockDeviceMappings: [{ DeviceName: "/dev/sdf", Ebs: { DeleteOnTermination: true } }] });
    expect((await call<compute.DescribeVolumesResponse>("DescribeVolumes", { VolumeIds: [v.VolumeId] })).Volumes[0]!.Attachments[0]!.DeleteOnTermination).toBe(true);
  });
});
