// One host routes one copy of an address range: instances of two subnets
// whose ranges overlap (two accounts' default VPCs are both 172.31.0.0/16,
// as in EC2) never share a host.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInstancesOperation } from "../src/instances/run.js";
import { ensureDefaultNetwork } from "../src/network/vpcs.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
const a = { accountId: "123456789012", operator: false };
const b = { accountId: "210987654321", operator: false };
beforeAll(async () => {
  t = await testCore();
  await ensureDefaultNetwork(t.core, b.accountId);
});
afterAll(() => t?.close());

const launch = async (principal: typeof a, imageId: string, count = 1) =>
  (await runInstancesOperation.handler(t.ctx(principal), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: count, MaxCount: count })))
    .Instances.map((i: compute.Instance) => i.InstanceId);
const hostsOf = async (ids: string[]) => [...new Set((await t.core.db.query<{ host_id: string }>("SELECT host_id FROM instances WHERE id = ANY($1)", [ids])).rows.map((r) => r.host_id))];

describe("placement and overlapping subnets", () => {
  it("keeps instances of overlapping subnets of different VPCs on different hosts, and same-subnet instances together", async () => {
    const first = await addHost(t.core, "one", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
    const [imageA, imageB] = [await addImage(t.core, a.accountId), await addImage(t.core, b.accountId)];
    expect(await hostsOf(await launch(a, imageA))).toEqual([first]);
    // B's default subnet overlaps A's: the one host cannot take B's instance.
    await expect(launch(b, imageB)).rejects.toMatchObject({ code: "InsufficientInstanceCapacity" });
    const second = await addHost(t.core, "two", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
    expect(await hostsOf(await launch(b, imageB, 3))).toEqual([second]);
    // A's further instances may go to its own host only, B's to theirs.
    expect(await hostsOf(await launch(a, imageA, 3))).toEqual([first]);
    // Once A's instances are gone, its host serves B again.
    await t.core.db.query("UPDATE instances SET state = 'terminated' WHERE owner_id = $1", [a.accountId]);
    expect((await hostsOf(await launch(b, imageB, 8))).sort()).toEqual([first, second].sort());
  });
});
