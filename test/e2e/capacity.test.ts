// 50 concurrent RunInstances against a host that fits 20: exactly 20 are
// placed, the rest get InsufficientInstanceCapacity, and the host is never
// overcommitted. The host runs the fake driver: this tests placement and the
// capacity transaction, not booting.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "../src/stack.js";

const stack = new Stack();
let imageId = "";
let hostId = "";

beforeAll(async () => {
  await stack.start();
  // t2.nano = 1 vCPU, 512 MiB; the test image has a 1 GiB root: 20 fit by vCPU.
  ({ hostId } = await stack.addAgent({ name: "fake20", driver: "fake", capacity: { vcpus: 20, memoryMib: 20 * 512 + 100, diskGib: 40 } }));
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

describe("capacity under concurrency", () => {
  it("places exactly 20 of 50 concurrent launches", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 })),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(ok).toHaveLength(20);
    expect(failed).toHaveLength(30);
    for (const f of failed) expect(f.reason.metadata.get("x-ec2-error-code")[0]).toBe("InsufficientInstanceCapacity");
    const { rows: [h] } = await stack.pool.query("SELECT used_vcpus, vcpus, used_memory_mib, memory_mib FROM hosts WHERE id = $1", [hostId]);
    expect(h).toMatchObject({ used_vcpus: 20, vcpus: 20 });
    expect(h.used_memory_mib).toBeLessThanOrEqual(h.memory_mib);
    const { rows: [n] } = await stack.pool.query("SELECT count(*)::int AS n FROM instances WHERE host_id = $1", [hostId]);
    expect(n.n).toBe(20);
  });

  it("MinCount is all-or-nothing; MaxCount takes what fits", async () => {
    const before = (await stack.pool.query("SELECT count(*)::int AS n FROM instances")).rows[0].n;
    await expect(stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 5 }))
      .rejects.toMatchObject({ details: expect.stringMatching(/^InsufficientInstanceCapacity: /) });
    expect((await stack.pool.query("SELECT count(*)::int AS n FROM instances")).rows[0].n).toBe(before);
    // Free three slots, then ask for 1..5: exactly three are placed.
    const some = (await stack.pool.query("SELECT id FROM instances ORDER BY row_seq LIMIT 3")).rows.map((r) => r.id);
    await stack.waitForState(some, "running");
    await stack.call("terminateInstances", { InstanceIds: some });
    await stack.waitForState(some, "terminated");
    const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 5 });
    expect(res.Instances).toHaveLength(3);
  });
});
