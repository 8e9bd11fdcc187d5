// DryRun runs an operation for real against a session that never commits:
// what would succeed answers DryRunOperation and writes nothing; what would
// fail answers the real error.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dryRun } from "../src/dryRun.js";
import { operationNamed } from "../src/operations.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
beforeAll(async () => {
  t = await testCore();
  await addHost(t.core, "dry", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
});
afterAll(() => t?.close());

const count = async (table: string) => (await t.core.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
const run = (name: string, req: unknown) => {
  const op = operationNamed(name)!;
  return dryRun(t.ctx(), op.handler, op.request.fromPartial(req as never));
};

describe("dryRun", () => {
  it("answers DryRunOperation for a launch that would succeed, and writes, claims and queues nothing", async () => {
    const imageId = await addImage(t.core);
    const before = { instances: await count("instances"), tokens: await count("run_requests"), used: (await t.core.db.query("SELECT used_vcpus FROM hosts")).rows };
    await expect(run("RunInstances", { ImageId: imageId, InstanceType: "t2.micro", MinCount: 2, MaxCount: 2, ClientToken: "dry-1" })).rejects.toMatchObject({ code: "DryRunOperation" });
    expect({ instances: await count("instances"), tokens: await count("run_requests"), used: (await t.core.db.query("SELECT used_vcpus FROM hosts")).rows }).toEqual(before);
    expect(t.enqueued).toEqual([]);
    // The same request for real then works: the dry run left no token behind.
    const real = await operationNamed("RunInstances")!.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.micro", MinCount: 2, MaxCount: 2, ClientToken: "dry-1" }));
    expect(real.Instances).toHaveLength(2);
  });

  it("answers the real error for a request that would fail", async () => {
    await expect(run("RunInstances", { ImageId: "ami-00000000000000000", MinCount: 1, MaxCount: 1 })).rejects.toMatchObject({ code: "InvalidAMIID.NotFound" });
    // Capacity is checked too: the one host has 8 vCPUs.
    await expect(run("RunInstances", { ImageId: await addImage(t.core), InstanceType: "t2.micro", MinCount: 50, MaxCount: 50 })).rejects.toMatchObject({ code: "InsufficientInstanceCapacity" });
    await expect(run("DeleteKeyPair", { KeyName: "" })).rejects.toMatchObject({ code: "MissingParameter" });
  });

  it("writes nothing for actions that write outside a transaction, and for creations", async () => {
    const imageId = await addImage(t.core);
    await expect(run("DeregisterImage", { ImageId: imageId })).rejects.toMatchObject({ code: "DryRunOperation" });
    expect((await t.core.db.query("SELECT state FROM images WHERE id = $1", [imageId])).rows[0].state).toBe("available");
    const vpcs = await count("vpcs");
    await expect(run("CreateVpc", { CidrBlock: "10.9.0.0/16" })).rejects.toMatchObject({ code: "DryRunOperation" });
    await expect(run("CreateKeyPair", { KeyName: "dry" })).rejects.toMatchObject({ code: "DryRunOperation" });
    expect(await count("vpcs")).toBe(vpcs);
    expect(await count("key_pairs")).toBe(0);
  });

  it("answers DryRunOperation for a read that would succeed", async () => {
    await expect(run("DescribeInstances", {})).rejects.toMatchObject({ code: "DryRunOperation" });
  });
});
