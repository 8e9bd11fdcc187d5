// RunInstances' transactions pass through the core's placement gate
// (CIRRUS_PLACEMENT_CONCURRENCY), against a real Postgres: with the one
// slot taken, a launch waits its turn without writing anything, and runs
// once the slot is free.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInstancesOperation } from "../src/instances/run.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
beforeAll(async () => {
  t = await testCore({ CIRRUS_PLACEMENT_CONCURRENCY: "1" });
  imageId = await addImage(t.core);
  await addHost(t.core, "gate", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
});
afterAll(() => t?.close());

const instances = async () => (await t.core.db.query<{ n: number }>("SELECT count(*)::int AS n FROM instances")).rows[0]!.n;

describe("the placement gate", () => {
  it("holds a launch while its slots are taken, and runs it when one frees", async () => {
    let free!: () => void;
    const held = t.core.placements(() => new Promise<void>((r) => (free = r)));
    const launch = runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 2 }));
    for (let i = 0; i < 200 && t.core.placements.pendingCount === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(t.core.placements.pendingCount).toBe(1);
    expect(await instances()).toBe(0);
    free();
    await held;
    expect((await launch).Instances).toHaveLength(2);
    expect(await instances()).toBe(2);
  });
});
