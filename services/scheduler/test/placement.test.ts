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

/** The plain O(n·h) greedy that planPlacement must agree with: best score, ties to the lowest id. */
function referencePlan(hosts: readonly HostCapacity[], r: PlacementRequest): string[] {
  const t = hosts.map((h) => ({ ...h }));
  const out: string[] = [];
  const fits = (h: HostCapacity) => h.alive && (!r.availabilityZone || h.availabilityZone === r.availabilityZone)
    && h.vcpus - h.usedVcpus >= r.vcpus && h.memoryMib - h.usedMemoryMib >= r.memoryMib && h.diskGib - h.usedDiskGib >= r.diskGib;
  const score = (h: HostCapacity) => (r.strategy === "pack" ? -1 : 1) * Math.min(
    (h.vcpus - h.usedVcpus - r.vcpus) / h.vcpus, (h.memoryMib - h.usedMemoryMib - r.memoryMib) / h.memoryMib, (h.diskGib - h.usedDiskGib - r.diskGib) / h.diskGib);
  while (out.length < r.maxCount) {
    const best = t.filter(fits).sort((a, b) => score(b) - score(a) || (a.id < b.id ? -1 : 1))[0];
    if (!best) break;
    best.usedVcpus += r.vcpus;
    best.usedMemoryMib += r.memoryMib;
    best.usedDiskGib += r.diskGib;
    out.push(best.id);
  }
  return out;
}

/** A small deterministic PRNG, so a failing case can be replayed. */
function prng(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe("planPlacement (heap)", () => {
  it("places exactly as the plain greedy does, on random fleets", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rnd = prng(seed);
      const hosts = Array.from({ length: 1 + Math.floor(rnd() * 12) }, (_, i) => host(`h${String(i).padStart(2, "0")}`, {
        vcpus: 1 + Math.floor(rnd() * 16), usedVcpus: 0, memoryMib: 1024 * (1 + Math.floor(rnd() * 16)), diskGib: 10 + Math.floor(rnd() * 90),
        alive: rnd() > 0.1, availabilityZone: rnd() > 0.5 ? "lab-1a" : "lab-1b",
      })).map((h) => ({ ...h, usedVcpus: Math.floor(rnd() * h.vcpus), usedMemoryMib: Math.floor(rnd() * h.memoryMib / 2) }));
      const r = req({ maxCount: Math.floor(rnd() * 40), vcpus: 1 + Math.floor(rnd() * 2), memoryMib: 512 * (1 + Math.floor(rnd() * 2)), strategy: rnd() > 0.5 ? "pack" : "spread", ...(rnd() > 0.5 ? { availabilityZone: "lab-1a" } : {}) });
      expect(planPlacement(hosts, r).hostIds, `seed ${seed}`).toEqual(referencePlan(hosts, r));
    }
  });

  it("breaks ties by the order it is given", () => {
    const hosts = [host("a"), host("b"), host("c")];
    expect(planPlacement(hosts, req({ maxCount: 3 })).hostIds).toEqual(["a", "b", "c"]);
    const reversed = { c: 0, b: 1, a: 2 } as Record<string, number>;
    expect(planPlacement(hosts, req({ maxCount: 3 }), { tieBreak: (id) => reversed[id]! }).hostIds).toEqual(["c", "b", "a"]);
  });

  it("plans 100000 instances over 1000 hosts without exceeding any", () => {
    const hosts = Array.from({ length: 1000 }, (_, i) => host(`h${i}`, { vcpus: 128, memoryMib: 131072, diskGib: 1000 }));
    const plan = planPlacement(hosts, req({ maxCount: 100_000, vcpus: 1, memoryMib: 512, diskGib: 1 }));
    expect(plan.hostIds).toHaveLength(100_000);
    const per = new Map<string, number>();
    for (const h of plan.hostIds) per.set(h, (per.get(h) ?? 0) + 1);
    expect(Math.max(...per.values())).toBe(100);
    expect(Math.min(...per.values())).toBe(100);
  });
});
