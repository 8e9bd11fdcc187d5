import { describe, expect, it } from "vitest";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { FakeDriver } from "../src/driver/fake.js";
import type { InterfaceRepair } from "../src/driver/types.js";
import { KeyedMutex } from "../src/keyed-mutex.js";
import { orphanDecision, planReconcile, Reconciler } from "../src/reconcile.js";
import { A, B, C, quietLogger, testSpec } from "./helpers.js";

const GRACE = 60_000;

describe("planReconcile", () => {
  it("never touches a desired instance", () => {
    const plan = planReconcile({ actual: [A], artifacts: [A], desired: new Set([A]), orphanSince: new Map([[A, 0]]), now: 10 * GRACE, graceMs: GRACE });
    expect(plan.candidates).toEqual([]);
    expect(plan.orphanSince.size).toBe(0);
  });

  it("starts a timer for an unwanted instance and makes it a candidate only after the grace period", () => {
    let plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: new Map(), now: 1000, graceMs: GRACE });
    expect(plan.candidates).toEqual([]);
    expect([...plan.orphanSince]).toEqual([[B, 1000]]);
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: plan.orphanSince, now: 1000 + GRACE - 1, graceMs: GRACE });
    expect(plan.candidates).toEqual([]);
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: plan.orphanSince, now: 1000 + GRACE, graceMs: GRACE });
    expect(plan.candidates).toEqual([B]);
  });

  it("counts artifacts without a domain (leftover disk or log) as present", () => {
    const plan = planReconcile({ actual: [], artifacts: [C], desired: new Set(), orphanSince: new Map([[C, 0]]), now: GRACE, graceMs: GRACE });
    expect(plan.candidates).toEqual([C]);
  });

  it("resets the timer of an instance that becomes desired again", () => {
    let plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: new Map(), now: 0, graceMs: GRACE });
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set([B]), orphanSince: plan.orphanSince, now: GRACE / 2, graceMs: GRACE });
    expect(plan.orphanSince.has(B)).toBe(false);
    plan = planReconcile({ actual: [B], artifacts: [], desired: new Set(), orphanSince: plan.orphanSince, now: GRACE + 1, graceMs: GRACE });
    expect(plan.candidates).toEqual([]); // unwanted again only since GRACE + 1
    expect(plan.orphanSince.get(B)).toBe(GRACE + 1);
  });

  it("forgets ids that are gone from the host", () => {
    const plan = planReconcile({ actual: [], artifacts: [], desired: new Set(), orphanSince: new Map([[B, 0]]), now: GRACE, graceMs: GRACE });
    expect(plan.orphanSince.size).toBe(0);
    expect(plan.candidates).toEqual([]);
  });

  it("makes candidates at once with a zero grace period and does not mutate its input", () => {
    const since = new Map<string, number>();
    const plan = planReconcile({ actual: [B, A], artifacts: [C, A], desired: new Set([A]), orphanSince: since, now: 5, graceMs: 0 });
    expect(plan.candidates).toEqual([B, C]);
    expect(since.size).toBe(0);
  });
});

/** Evidence from a verdict table and a set of ids this agent made for this host; records what was forgotten. */
function evidence(verdicts: Record<string, agent.InstanceVerdict>, made: string[] = []) {
  const asked: string[][] = [];
  const forgotten: string[] = [];
  return {
    asked,
    forgotten,
    async classify(ids: readonly string[]) {
      asked.push([...ids]);
      return new Map(ids.flatMap((id) => (verdicts[id] === undefined ? [] : [[id, verdicts[id]!] as const])));
    },
    async madeHere(id: string) {
      return made.includes(id);
    },
    async forget(id: string) {
      forgotten.push(id);
    },
  };
}

const V = agent.InstanceVerdict;

describe("orphanDecision", () => {
  it("removes only on the control plane's word (terminated here) or its silence plus this agent's own record", () => {
    expect(orphanDecision(V.INSTANCE_VERDICT_TERMINATED, false).remove).toBe(true);
    expect(orphanDecision(V.INSTANCE_VERDICT_UNKNOWN, true).remove).toBe(true);
    expect(orphanDecision(V.INSTANCE_VERDICT_UNKNOWN, false).remove).toBe(false);
    expect(orphanDecision(V.INSTANCE_VERDICT_KEEP, true).remove).toBe(false);
    expect(orphanDecision(undefined, true).remove).toBe(false);
    expect(orphanDecision(V.INSTANCE_VERDICT_UNSPECIFIED, true).remove).toBe(false);
  });
});

describe("Reconciler", () => {
  const capacity = { vcpus: 8, memoryMib: 8192, diskGib: 100 };
  const reconciler = (driver: FakeDriver, ev: ReturnType<typeof evidence>, now: () => number, locks = new KeyedMutex()) =>
    new Reconciler({ driver, locks, evidence: ev, graceMs: GRACE, quarantineRetentionMs: 7 * 86_400_000, log: quietLogger(), now });

  it("quarantines orphans past the grace period on evidence, keeps the others, and leaves desired ones alone", async () => {
    const D = newId("i");
    const driver = new FakeDriver({ capacity });
    for (const id of [A, B, C, D]) await driver.createInstance(testSpec(id));
    // B terminated here; C unknown but ours; D unknown and not ours (another agent's, a restored database's).
    const ev = evidence({ [B]: V.INSTANCE_VERDICT_TERMINATED, [C]: V.INSTANCE_VERDICT_UNKNOWN, [D]: V.INSTANCE_VERDICT_UNKNOWN }, [C]);
    let now = 0;
    const r = reconciler(driver, ev, () => now);
    const desired: agent.HostState = { revision: 1, instances: [testSpec(A)], network: undefined };
    expect(await r.round(await driver.list(), desired)).toEqual({ quarantined: [], kept: [], repaired: [] });
    expect(ev.asked).toEqual([]);
    now = GRACE;
    expect(await r.round(await driver.list(), desired)).toEqual({ quarantined: [B, C].sort(), kept: [D], repaired: [] });
    expect(ev.asked).toEqual([[B, C, D].sort()]);
    expect(ev.forgotten.sort()).toEqual([B, C].sort());
    expect((await driver.list()).map((d) => d.instanceId).sort()).toEqual([A, D].sort());
    // A kept orphan is not asked about again until its recheck time.
    now = GRACE + 1000;
    expect(await r.round(await driver.list(), desired)).toEqual({ quarantined: [], kept: [], repaired: [] });
    expect(ev.asked).toHaveLength(1);
  });

  it("removes nothing when the control plane cannot be asked, or gives no verdict", async () => {
    const driver = new FakeDriver({ capacity });
    await driver.createInstance(testSpec(A));
    let now = 0;
    const failing = { ...evidence({}, [A]), classify: async () => Promise.reject(new Error("control plane down")) };
    const r = reconciler(driver, failing, () => now);
    const desired: agent.HostState = { revision: 1, instances: [], network: undefined };
    await r.round(await driver.list(), desired);
    now = GRACE;
    expect(await r.round(await driver.list(), desired)).toEqual({ quarantined: [], kept: [], repaired: [] });
    const silent = reconciler(driver, evidence({}, [A]), () => now);
    await silent.round(await driver.list(), desired);
    now = 2 * GRACE;
    expect(await silent.round(await driver.list(), desired)).toEqual({ quarantined: [], kept: [A], repaired: [] });
    expect((await driver.list()).map((d) => d.instanceId)).toEqual([A]);
  });

  it("removes nothing before the control plane has sent a host state: nothing is known to be unwanted", async () => {
    const driver = new FakeDriver({ capacity });
    await driver.createInstance(testSpec(A));
    let now = 0;
    const ev = evidence({ [A]: V.INSTANCE_VERDICT_TERMINATED });
    const r = reconciler(driver, ev, () => now);
    expect(await r.round(await driver.list(), undefined)).toEqual({ quarantined: [], kept: [], repaired: [] });
    now = 10 * GRACE;
    expect(await r.round(await driver.list(), undefined)).toEqual({ quarantined: [], kept: [], repaired: [] });
    expect((await driver.list()).map((d) => d.instanceId)).toEqual([A]);
    expect(ev.asked).toEqual([]);
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
    const r = reconciler(driver, evidence({}), () => 0, locks);
    const desired: agent.HostState = { revision: 1, instances: [A, B, C, D].map((id) => testSpec(id)), network: undefined };
    // D is shut off: not checked. B's repair fails, is logged, and does not keep C from its repair.
    expect(await r.round(await driver.list(), desired)).toEqual({ quarantined: [], kept: [], repaired: [C] });
    expect(calls).toEqual([`check ${[A, B, C].sort().join(",")}`, `repair ${B} locked=true`, `repair ${C} locked=true`]);
  });
});
