// A security group whose members name the group itself (the default group)
// grows the compiled firewall quadratically. Past the configured limit the
// API leaves those rules out on that host (fail closed) instead of
// exhausting its memory, and keeps serving.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { agent } from "@cirrus/proto";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack({ apiEnv: { CIRRUS_MAX_GROUP_ENTRIES_PER_HOST: "20" } });
let hostId = "";
let imageId = "";

beforeAll(async () => {
  await stack.start(0);
  ({ hostId } = await stack.addAgent({ name: "fake1", driver: "fake", capacity: { vcpus: 64, memoryMib: 64 * 512, diskGib: 64 } }));
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

const network = async (): Promise<agent.HostNetworkState> => (await stack.hostState(hostId)).network!;

describe("group-sourced rules past the per-host limit", () => {
  it("are expanded below the limit and left out (fail closed) above it, with the API still serving", async () => {
    await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 4, MaxCount: 4 });
    // 4 members × 4 instances = 16 entries: expanded.
    const small = await network();
    expect(small.firewalls).toHaveLength(4);
    for (const f of small.firewalls) expect(f.ingress[0]?.cidrs).toHaveLength(4);
    await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
    // 5 × 5 = 25 > 20: the default group's self rule is left out everywhere on the host.
    const big = await network();
    expect(big.firewalls).toHaveLength(5);
    for (const f of big.firewalls) expect(f.ingress).toEqual([]);
    expect(big.firewalls[0]!.egress.length).toBeGreaterThan(0);
    await waitUntil("the API to keep serving", async () => (await stack.call("describeRegions", {})).Regions.length === 1);
    expect(stack.api.alive).toBe(true);
  });
});
