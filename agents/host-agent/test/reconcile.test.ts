import { describe, expect, it } from "vitest";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { FakeDriver } from "../src/driver/fake.js";
import type { InterfaceRepair } from "../src/driver/types.js";
import { KeyedMutex } from "../src/keyed-mutex.js";
import { planReconcile, Reconciler } from "../src/reconcile.js";
import { A, B, C, quietLogger, testSpec } from "./helpers.js";

const GRACE = 60_000;

describe("planReconcile", () => {
  it("never touches a desired instance", () => {
    const plan = planReconcile({ actual: [A], artifacts: [A], desired: new Set([A]), orphanSince: new Map([[A, 0]]), now: 10 * GRACE, graceMs: GRACE });
    expect(plan.destroy).toEqual([]);
    expect(plan.orphanSince.size).toBe(0);
  });

  it("starts a timer for an unwanted instance and destroys it only after the grace period", () => {
    let plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: new Map(), now: 1000, graceMs: GRACE });
    expect(plan.destroy).toEqual([]);
    expect([...plan.orphanSince]).toEqual([[B, 1000]]);
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: plan.orphanSince, now: 1000 + GRACE - 1, graceMs: GRACE });
    expect(plan.destroy).toEqual([]);
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: plan.orphanSince, now: 1000 + GRACE, graceMs: GRACE });
    expect(plan.destroy).toEqual([B]);
  });

  it("counts artifacts without a domain (leftover disk or log) as present", () => {
    const plan = planReconcile({ actual: [], artifacts: [C], desired: new Set(), orphanSince: new Map([[C, 0]]), now: GRACE, graceMs: GRACE });
    expect(plan.destroy).toEqual([C]);
  });

  it("resets the timer of an instance that becomes desired again", () => {
    let plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: new Map(), now: 0, graceMs: GRACE });
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set([B]), orphanSince: plan.orphanSince, now: GRACE / 2, graceMs: GRACE });
    expect(plan.orphanSince.has(B)).toBe(false);
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: plan.orphanSince, now: GRACE + 1, graceMs: GRACE });
    expect(plan.destroy).toEqual([]); // unwanted again only since GRACE + 1
    expect(plan.orphanSince.get(B)).toBe(GRACE + 1);
  });

  it("forgets ids that are gone from the host", () => {
    const plan = planReconcile({ actual: [], artifacts: [], desired: new Set(), orphanSince: new Map([[B, 0]]), now: GRACE, graceMs: GRACE });
    expect(plan.orphanSince.size).toBe(0);
    expect(plan.destroy).toEqual([]);
  });

  it("destroys at once with a zero grace period and does not mutate its input", () => {
    const since = new Map<string, number>();
    const plan = planReconcile({ actual: [B, A], artifacts: [C, A], desired: new Set([A]), orphanSince: since, now: 5, graceMs: 0 });
    expect(plan.destroy).toEqual([B, C]);
    expect(since.size).toBe(0);
  });
});

describe("Reconciler", () => {
  it("destroys orphans of a real driver after the grace period, and leaves desired ones alone", async () => {
    const driver = new FakeDriver({ capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } });
    await driver.createInstance(testSpec(A));
    await driver.createInstance(testSpec(B));
    let now = 0;
    const r = new Reconciler(driver, new KeyedMutex(), GRACE, quietLogger(), () => now);
    const desired: agent.HostState = { revision: 1, instances: [testSpec(A)], network: undefined };
    expect(await r.round(await driver.list(), desired)).toEqual({ destroyed: [], repaired: [] });
    now = GRACE;
    expect(await r.round(await driver.list(), desired)).toEqual({ destroyed: [B], repaired: [] });
    expect((await driver.list()).map((d) => d.instanceId)).toEqual([A]);
  });

  it("destroys nothing before the control plane has sent a host state: nothing is known to be unwanted", async () => {
    const driver = new FakeDriver({ capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } });
    await driver.createInstance(testSpec(A));
    let now = 0;
    const r = new Reconciler(driver, new KeyedMutex(), GRACE, quietLogger(), () => now);
    expect(await r.round(await driver.list(), undefined)).toEqual({ destroyed: [], repaired: [] });
    now = 10 * GRACE;
    expect(await r.round(await driver.list(), undefined)).toEqual({ destroyed: [], repaired: [] });
    expect((await driver.list()).map((d) => d.instanceId)).toEqual([A]);
  });

  it("repairs the broken NICs of running instances under their lock, one failure not stopping the others", async () => {
    const D = newId("i");
    const calls: string[] = [];
    const locks = new KeyedMutex();
    class NicTrouble extends FakeDriver {
      override async brokenInterfaces(ids: readonly string[]): Promise<string[]> {
        calls.push(`check ${ids.join(",")}`);
        return ids.filter((id) => id !== A);
      }
      override async repairInterface(id: string): Promise<InterfaceRepair | undefined> {
        calls.push(`repair ${id} locked=${locks.size === 1}`);
        if (id === B) throw new Error("guest did not release its NIC");
        return { action: "replugged", tap: "ct0000000000001", bridge: "cb0000000000001", durationMs: 1 };
      }
    }
    const driver = new NicTrouble({ capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } });
    for (const id of [A, B, C, D]) await driver.createInstance(testSpec(id));
    await driver.stopInstance(D, { force: true, timeoutMs: 0 });
    const r = new Reconciler(driver, locks, GRACE, quietLogger(), () => 0);
    const desired: agent.HostState = { revision: 1, instances: [A, B, C, D].map((id) => testSpec(id)), network: undefined };
    // D is shut off: not checked. B's repair fails, is logged, and does not keep C from its repair.
    expect(await r.round(await driver.list(), desired)).toEqual({ destroyed: [], repaired: [C] });
    expect(calls).toEqual([`check ${[A, B, C].sort().join(",")}`, `repair ${B} locked=true`, `repair ${C} locked=true`]);
  });
});
