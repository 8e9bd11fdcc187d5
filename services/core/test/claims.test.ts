// The capacity audit's comparison (the SQL side runs against Postgres in
// capacity.pg.test.ts).
import { describe, expect, it } from "vitest";
import { capacityDrift } from "../src/instances/claims.js";

describe("capacityDrift", () => {
  it("is undefined when the books match the instances", () => {
    expect(capacityDrift("h-1", { vcpus: 4, memoryMib: 2048, diskGib: 8 }, { vcpus: 4, memoryMib: 2048, diskGib: 8 })).toBeUndefined();
  });

  it("reports any resource that differs, with both sides", () => {
    for (const actual of [{ vcpus: 3, memoryMib: 2048, diskGib: 8 }, { vcpus: 4, memoryMib: 1024, diskGib: 8 }, { vcpus: 4, memoryMib: 2048, diskGib: 9 }]) {
      expect(capacityDrift("h-1", { vcpus: 4, memoryMib: 2048, diskGib: 8 }, actual)).toEqual({ hostId: "h-1", recorded: { vcpus: 4, memoryMib: 2048, diskGib: 8 }, actual });
    }
  });
});
