// The sweeper walks stale steps from a cursor: however many are stuck, every
// one is swept within ceil(stale / limit) rounds, and the walk starts over.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInstancesOperation } from "../src/instances/run.js";
import { StaleSweeper } from "../src/lifecycle.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
beforeAll(async () => {
  t = await testCore();
  await addHost(t.core, "stuck", { vcpus: 64, memoryMib: 65536, diskGib: 640 });
});
afterAll(() => t?.close());

describe("StaleSweeper", () => {
  it("visits every stale step within ceil(stale / limit) rounds, the oldest ones not starving the rest, then starts over", async () => {
    const imageId = await addImage(t.core);
    const res = await runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 25, MaxCount: 25 }));
    const ids = res.Instances.map((i: compute.Instance) => i.InstanceId).sort();
    // Twenty stuck for an hour (a dead host's), five stale only for a minute.
    await t.core.db.query("UPDATE instances SET state_changed_at = now() - interval '1 hour' WHERE id = ANY($1)", [ids.slice(0, 20)]);
    await t.core.db.query("UPDATE instances SET state_changed_at = now() - interval '1 minute' WHERE id = ANY($1)", [ids.slice(20)]);
    const sweeper = new StaleSweeper();
    const round = async () => (await sweeper.next(t.core, 10_000, 10)).flat().map((s) => s.id).sort();
    const seen = [await round(), await round(), await round()];
    expect(seen.map((r) => r.length)).toEqual([10, 10, 5]);
    expect(seen.flat().sort()).toEqual(ids);
    // Walked to the end: the next round starts over.
    expect(await round()).toEqual(ids.slice(0, 10));
  });
});
