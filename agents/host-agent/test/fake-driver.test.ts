import { describe, expect, it } from "vitest";
import { agent } from "@cirrus/proto";
import { FakeDriver } from "../src/driver/fake.js";
import { DriverError } from "../src/driver/types.js";
import { A, B, C, testSpec } from "./helpers.js";

const { PowerState } = agent;
const spec = (instanceId: string, vcpus = 2) => testSpec(instanceId, vcpus, 1024, 10);

describe("FakeDriver", () => {
  it("accounts resources and refuses to create beyond capacity, changing nothing", async () => {
    const d = new FakeDriver({ capacity: { vcpus: 4, memoryMib: 4096, diskGib: 100 } });
    await d.createInstance(spec(A));
    await d.createInstance(spec(B));
    expect(d.used()).toEqual({ vcpus: 4, memoryMib: 2048, diskGib: 20 });
    await expect(d.createInstance(spec(C, 1))).rejects.toThrow(/full/);
    expect((await d.list()).map((x) => x.instanceId).sort()).toEqual([A, B]);
    await d.destroyInstance(A);
    await d.createInstance(spec(C, 1));
    expect(d.used()).toEqual({ vcpus: 3, memoryMib: 2048, diskGib: 20 });
  });

  it("keeps a stopped instance's resources and disk (like a defined domain)", async () => {
    const d = new FakeDriver({ capacity: { vcpus: 2, memoryMib: 4096, diskGib: 100 } });
    await d.createInstance(spec(A));
    expect(await d.stopInstance(A, { force: false, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    await expect(d.createInstance(spec(B))).rejects.toThrow(/full/);
    expect(await d.listArtifacts()).toEqual([A]);
  });

  it("follows the driver postconditions: idempotent create/stop/destroy, NotFound on start of nothing", async () => {
    const d = new FakeDriver({ capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } });
    expect(await d.createInstance(spec(A))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(await d.createInstance(spec(A))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(d.used().vcpus).toBe(2);
    await d.stopInstance(A, { force: true, timeoutMs: 0 });
    expect(await d.createInstance(spec(A))).toBe(PowerState.POWER_STATE_RUNNING); // starts the stopped one
    await d.rebootInstance(A);
    expect((await d.consoleOutput(A)).toString()).toBe(
      [1, 2, 3].map((n) => `CIRRUS-BOOT instance-id=${A} boot=${n}\n`).join(""),
    );
    expect(await d.destroyInstance(A)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await d.destroyInstance(A)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await d.stopInstance(A, { force: false, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_ABSENT);
    await expect(d.startInstance(A)).rejects.toMatchObject({ kind: "NotFound" });
    await expect(d.createInstance(spec("i-bad"))).rejects.toBeInstanceOf(DriverError);
  });

  it("injects failures at the configured rate without changing state", async () => {
    let n = 0;
    const d = new FakeDriver({ capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 }, failureRate: 0.5, random: () => (n++ % 2 === 0 ? 0.1 : 0.9) });
    await expect(d.createInstance(spec(A))).rejects.toThrow(/injected/);
    expect(await d.list()).toEqual([]);
    expect(await d.createInstance(spec(A))).toBe(PowerState.POWER_STATE_RUNNING);
  });

  it("adds the configured delay to calls", async () => {
    const d = new FakeDriver({ capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 }, delayMs: { min: 50, max: 50 } });
    const t0 = Date.now();
    await d.list();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
  });
});
