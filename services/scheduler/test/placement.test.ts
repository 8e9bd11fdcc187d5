import { describe, expect, it } from "vitest";
import { planPlacement, type HostCapacity, type PlacementRequest } from "../src/index.js";

const host = (id: string, over: Partial<HostCapacity> = {}): HostCapacity => ({
  id, availabilityZone: "lab-1a", alive: true, vcpus: 4, memoryMib: 4096, diskGib: 100, usedVcpus: 0, usedMemoryMib: 0, usedDiskGib: 0, ...over,
});
const req = (over: Partial<PlacementRequest> = {}): PlacementRequest => ({ maxCount: 1, vcpus: 1, memoryMib: 1024, diskGib: 1, strategy: "spread", ...over });

describe("planPlacement", () => {
  it("never exceeds any host's capacity", () => {
    const plan = planPlacement([host("a"), host("b", { vcpus: 2 })], req({ maxCount: 100 }));
    expect(plan.hostIds.filter((h) => h === "a")).toHaveLength(4);
    expect(plan.hostIds.filter((h) => h === "b")).toHaveLength(2);
    expect(plan.rejections.a?.[0]).toMatch(/^Capacity: vCPU 0 free/);
  });

  it("spreads by default and packs on request", () => {
    const hosts = [host("a", { usedVcpus: 2, usedMemoryMib: 2048 }), host("b")];
    expect(planPlacement(hosts, req()).hostIds).toEqual(["b"]);
    expect(planPlacement(hosts, req({ strategy: "pack" })).hostIds).toEqual(["a"]);
    expect(planPlacement([host("a"), host("b")], req({ maxCount: 4 })).hostIds.sort()).toEqual(["a", "a", "b", "b"]);
  });

  it("filters by zone and liveness and says why", () => {
    const plan = planPlacement([host("a", { availabilityZone: "lab-1b" }), host("b", { alive: false })], req({ availabilityZone: "lab-1a" }));
    expect(plan.hostIds).toEqual([]);
    expect(plan.rejections.a).toEqual(["AvailabilityZone: host is in lab-1b, not lab-1a"]);
    expect(plan.rejections.b).toEqual(["Alive: no recent heartbeat"]);
  });

  it("does not mutate its input", () => {
    const hosts = [host("a")];
    planPlacement(hosts, req({ maxCount: 3 }));
    expect(hosts[0]?.usedVcpus).toBe(0);
  });
});
