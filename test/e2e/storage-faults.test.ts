// The agent and the worker killed (SIGKILL) while a live snapshot and an
// attach are in flight: after both restart, each completes exactly once,
// the guest runs on the volume's own file again, every file of the stores
// passes `qemu-img check`, and no temporary or overlay file is left.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
let instanceId = "";
const volumesDir = () => join(stack.volumeStoreDir("lab-1a"), "volumes");
const snapshotsDir = () => join(stack.snapshotStoreDir, "snapshots");
const domain = () => `${stack.domainPrefix}${instanceId}`;
const virsh = (...args: string[]) => execFileSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });

async function waitVolume(id: string, state: string, attachment?: string) {
  return waitUntil(`${id} ${state}`, async () => {
    const [v] = (await stack.call("describeVolumes", { VolumeIds: [id] })).Volumes;
    return v.State === state && (attachment === undefined || v.Attachments[0]?.State === attachment) ? v : undefined;
  }, 180_000, 500);
}

/** Kills the agent and the worker at once, then starts both again. */
async function killBoth(): Promise<void> {
  const agent = stack.agents.get("faults")!;
  const worker = stack.workers[0]!;
  await Promise.all([agent.kill("SIGKILL"), worker.kill("SIGKILL")]);
  agent.start();
  worker.start();
}

function checkStores(): void {
  const files = [volumesDir(), snapshotsDir()].filter((d) => existsSync(d)).flatMap((d) => readdirSync(d).map((f) => join(d, f)));
  expect(files.filter((f) => /\.tmp$|\.live\.qcow2$/.test(f))).toEqual([]);
  for (const f of files.filter((f) => f.endsWith(".qcow2"))) {
    // -U: the attached volume is open in QEMU; its metadata is still checked.
    expect(() => execFileSync("qemu-img", ["check", "-U", "-q", f], { stdio: "pipe" }), f).not.toThrow();
  }
}

/** The disks of the domain (live or persistent) whose serial is the volume's. */
function disksOf(volumeId: string, inactive: boolean): number {
  const xml = virsh("dumpxml", ...(inactive ? ["--inactive"] : []), "--", domain());
  return xml.split(`<serial>${volumeId.replace("-", "")}</serial>`).length - 1;
}

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "faults", driver: "libvirt", capacity: { vcpus: 2, memoryMib: 2048, diskGib: 20 } });
  const imageId = await stack.registerTestImage();
  instanceId = (await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 })).Instances[0].InstanceId;
  await stack.waitForState([instanceId], "running", 180_000);
}, 300_000);
afterAll(() => stack.stop());

describe("storage steps with the agent and the worker killed mid-way", () => {
  it("a live snapshot completes exactly once, the guest back on its volume's own file", async () => {
    const v = (await stack.call("createVolume", { AvailabilityZone: "lab-1a", Size: 4 })).VolumeId as string;
    await waitVolume(v, "available");
    // 2 GiB of data, so that reading it for the snapshot takes long enough to be interrupted.
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 1G", "-c", "write -P 0x5a 1G 1G", join(volumesDir(), `${v}.qcow2`)], { stdio: "ignore" });
    await stack.call("attachVolume", { VolumeId: v, InstanceId: instanceId, Device: "/dev/sdf" });
    await waitVolume(v, "in-use", "attached");

    const s = (await stack.call("createSnapshot", { VolumeId: v })).SnapshotId as string;
    await waitUntil("the snapshot's overlay (the guest frozen onto it)", async () => readdirSync(volumesDir()).some((f) => f.endsWith(".live.qcow2")), 30_000, 50);
    await killBoth();
    const [pending] = (await stack.call("describeSnapshots", { SnapshotIds: [s] })).Snapshots;
    expect(pending.State).toBe("pending");
    await waitUntil(`${s} completed`, async () => (await stack.call("describeSnapshots", { SnapshotIds: [s] })).Snapshots[0].State === "completed", 180_000, 500);

    expect((await stack.call("describeSnapshots", { OwnerIds: ["self"] })).Snapshots.map((x: { SnapshotId: string }) => x.SnapshotId)).toEqual([s]);
    expect(readdirSync(snapshotsDir()).filter((f) => f.endsWith(".qcow2"))).toEqual([`${s}.qcow2`]);
    expect(virsh("domblklist", "--", domain())).toContain(join(volumesDir(), `${v}.qcow2`));
    expect(stack.domState(instanceId)).toBe("running");
    checkStores();
    // The snapshot holds what the volume held.
    const restored = (await stack.call("createVolume", { AvailabilityZone: "lab-1a", SnapshotId: s })).VolumeId as string;
    await waitVolume(restored, "available");
    expect(execFileSync("qemu-io", ["-r", "-f", "qcow2", "-c", "read -P 0x5a 1G 1M", join(volumesDir(), `${restored}.qcow2`)], { encoding: "utf8" })).toContain("read 1048576/1048576 bytes");
  });

  it("an attach completes exactly once: one disk in each definition", async () => {
    const w = (await stack.call("createVolume", { AvailabilityZone: "lab-1a", Size: 1 })).VolumeId as string;
    await waitVolume(w, "available");
    await stack.call("attachVolume", { VolumeId: w, InstanceId: instanceId, Device: "/dev/sdg" });
    await killBoth();
    await waitVolume(w, "in-use", "attached");
    expect([disksOf(w, false), disksOf(w, true)]).toEqual([1, 1]);
    checkStores();
  });
});
