// Planner statistics after a bulk launch, against a real Postgres: a launch
// of at least 1,000 instances that is a tenth of the table analyzes it at
// once (autovacuum would take a minute or more), a small one leaves it to
// autovacuum.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInstancesOperation } from "../src/instances/run.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
beforeAll(async () => {
  t = await testCore();
  imageId = await addImage(t.core);
  await addHost(t.core, "bulk", { vcpus: 2000, memoryMib: 2000 * 512, diskGib: 2000 });
});
afterAll(() => t?.close());

const launch = (count: number) =>
  runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: count, MaxCount: count }));
/** The row counts the planner believes (-1: never analyzed). */
const believed = async (table: string) => (await t.core.db.query<{ n: number }>("SELECT reltuples AS n FROM pg_class WHERE oid = $1::regclass", [table])).rows[0]!.n;

describe("statistics after a bulk launch", () => {
  it("are fresh right after a launch of 1,000 instances, and a launch of 10 leaves them", async () => {
    expect(await believed("instances")).toBe(-1);
    await launch(1000);
    expect(await believed("instances")).toBe(1000);
    expect(await believed("instance_security_groups")).toBe(1000);
    await launch(10);
    expect(await believed("instances")).toBe(1000);
  });
});
