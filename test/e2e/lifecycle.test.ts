// The whole stack with real Postgres, Redis, libvirt and QEMU (TCG):
// RunInstances (count 2) → running with boot markers → Stop → Start →
// Reboot → Start over a missing domain → Terminate, checking the hypervisor and host capacity at each step.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
let imageId = "";
let hostId = "";
let instancesDir = "";
let ids: string[] = [];

const bootMarkers = async (id: string) => [...(await stack.consoleText(id)).matchAll(new RegExp(`CIRRUS-BOOT instance-id=${id} boot=(\\d+)`, "g"))].map((m) => Number(m[1]));
const hostUsage = async () => (await stack.pool.query("SELECT used_vcpus, used_memory_mib, used_disk_gib FROM hosts WHERE id = $1", [hostId])).rows[0];

beforeAll(async () => {
  await stack.start();
  ({ hostId, instancesDir } = await stack.addAgent({ name: "kvm1", driver: "libvirt", capacity: { vcpus: 4, memoryMib: 4096, diskGib: 20 } }));
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

describe("instance lifecycle on libvirt", () => {
  it("launches two instances that boot and show their identity on the console", async () => {
    const res = await stack.call("runInstances", {
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 2, ClientToken: `tok-${stack.runId}`,
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "e2e" }] }],
    });
    ids = res.Instances.map((i: { InstanceId: string }) => i.InstanceId);
    expect(ids).toHaveLength(2);
    expect(res.Instances.every((i: { State: { Name: string; Code: number } }) => i.State.Name === "pending" && i.State.Code === 0)).toBe(true);
    expect(await hostUsage()).toEqual({ used_vcpus: 2, used_memory_mib: 1024, used_disk_gib: 2 });

    // The same ClientToken returns the same reservation and launches nothing more.
    const again = await stack.call("runInstances", {
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 2, ClientToken: `tok-${stack.runId}`,
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "e2e" }] }],
    });
    expect(again.ReservationId).toBe(res.ReservationId);

    await stack.waitForState(ids, "running", 180_000);
    for (const id of ids) {
      expect(stack.domState(id)).toBe("running");
      await waitUntil(`boot marker of ${id}`, async () => (await bootMarkers(id)).length === 1, 120_000, 1000);
      expect(existsSync(`${instancesDir}`) && readdirSync(instancesDir).some((f) => f.includes(id))).toBe(true);
    }
    const tagged = await stack.call("describeInstances", { Filters: [{ Name: "tag:Name", Values: ["e2e"] }, { Name: "instance-state-name", Values: ["running"] }] });
    expect(tagged.Reservations.flatMap((r: { Instances: unknown[] }) => r.Instances)).toHaveLength(2);
  });

  it("stops, starts and reboots", async () => {
    const stop = await stack.call("stopInstances", { InstanceIds: ids });
    expect(stop.StoppingInstances.map((c: { CurrentState: { Name: string } }) => c.CurrentState.Name)).toEqual(["stopping", "stopping"]);
    await stack.waitForState(ids, "stopped");
    for (const id of ids) expect(stack.domState(id)).toBe("shut off");
    expect(await hostUsage()).toEqual({ used_vcpus: 2, used_memory_mib: 1024, used_disk_gib: 2 });

    await stack.call("startInstances", { InstanceIds: ids });
    await stack.waitForState(ids, "running");
    for (const id of ids) {
      expect(stack.domState(id)).toBe("running");
      await waitUntil(`second boot of ${id}`, async () => (await bootMarkers(id)).includes(2), 120_000, 1000);
    }

    await stack.call("rebootInstances", { InstanceIds: [ids[0]] });
    await waitUntil("reboot to show a third boot", async () => (await bootMarkers(ids[0]!)).includes(3), 120_000, 1000);
    await stack.waitForState([ids[0]!], "running");
    expect(stack.domState(ids[0]!)).toBe("running");
  });

  it("a stopped instance whose domain went missing starts over its own disk, and without its disk stays stopped, saying why", async () => {
    const id = ids[1]!;
    const virsh = (...args: string[]) => execFileSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });
    const disk = `${instancesDir}/${stack.domainPrefix}${id}.qcow2`;
    await stack.call("stopInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "stopped");
    virsh("undefine", "--", `${stack.domainPrefix}${id}`);
    await stack.call("startInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "running");
    // The boot counter lives on the root disk: a third boot, not a first on a fresh overlay.
    await waitUntil(`third boot of ${id}`, async () => (await bootMarkers(id)).includes(3), 120_000, 1000);
    expect(await bootMarkers(id)).toEqual([1, 2, 3]);

    await stack.call("stopInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "stopped");
    virsh("undefine", "--", `${stack.domainPrefix}${id}`);
    rmSync(disk);
    await stack.call("startInstances", { InstanceIds: [id] });
    const reason = await waitUntil("the start to fail", async () => {
      const i = await stack.instance(id);
      return i.State?.Name === "stopped" && i.StateReason?.Message.includes("MissingDisk") ? i.StateReason : undefined;
    }, 60_000, 500);
    expect(reason.Code).toBe("Server.InternalError");
    expect(reason.Message).toContain(disk);
    expect(existsSync(disk)).toBe(false);
    expect(stack.domState(id)).toBe("absent");
  });

  it("terminates: no domain, no disk, capacity released", async () => {
    const res = await stack.call("terminateInstances", { InstanceIds: ids });
    expect(res.TerminatingInstances.map((c: { CurrentState: { Name: string } }) => c.CurrentState.Name)).toEqual(["shutting-down", "shutting-down"]);
    await stack.waitForState(ids, "terminated");
    for (const id of ids) {
      expect(stack.domState(id)).toBe("absent");
      expect(readdirSync(instancesDir).filter((f) => f.includes(id))).toEqual([]);
    }
    expect(await hostUsage()).toEqual({ used_vcpus: 0, used_memory_mib: 0, used_disk_gib: 0 });
    // Terminated instances stay visible, and stopping one is refused.
    expect((await stack.instance(ids[0]!)).State).toEqual({ Code: 48, Name: "terminated" });
    await expect(stack.call("stopInstances", { InstanceIds: [ids[0]] })).rejects.toMatchObject({ details: expect.stringMatching(/^IncorrectInstanceState: /) });
  });
});
