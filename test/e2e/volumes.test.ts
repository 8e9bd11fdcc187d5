// EBS volumes and snapshots end to end with real guests on two hosts of one
// zone (two agents on this machine sharing the zone's volume directory and
// the region's snapshot directory): a guest writes a marker to a new volume;
// a live snapshot of it, restored to a volume on the other host, reads the
// marker; a copy of the snapshot outlives the original snapshot and volume.
// Hot attach and detach: the guest sees each volume by its id (the disk's
// serial), and a detach finishes when the guest lets the device go.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
let imageId = "";
let a = "";
let b = "";

// The guest's side, as user data: every second, each virtio disk other
// than the root is reported once on the console with its serial and the
// first line it holds; a blank one gets a marker naming its serial; a disk
// that went away is reported gone.
const WATCHER = `#!/bin/sh
seen=""
while true; do
  for d in /sys/block/vd[b-z]; do
    [ -e "$d" ] || continue
    n=\${d##*/}; s=$(cat $d/serial 2>/dev/null)
    case " $seen " in *" $n:$s "*) continue;; esac
    seen="$seen $n:$s"
    head=$(dd if=/dev/$n bs=512 count=1 2>/dev/null | tr -d '\\000' | head -n 1)
    echo "CIRRUS-DISK dev=$n serial=$s sectors=$(cat $d/size) head=$head"
    if [ -z "$head" ]; then
      printf 'MARKER-%s\\n' "$s" | dd of=/dev/$n conv=fsync 2>/dev/null && echo "CIRRUS-DISK-WRITTEN dev=$n serial=$s"
    fi
  done
  for e in $seen; do
    n=\${e%%:*}
    if [ ! -e /sys/block/$n ]; then echo "CIRRUS-DISK-GONE dev=$n serial=\${e#*:}"; seen=$(echo " $seen " | sed "s| $e | |"); fi
  done
  sleep 1
done
`;

/** The serial a volume shows the guest: its id without the hyphen. */
const serialOf = (volumeId: string) => volumeId.replace("-", "");

async function consoleLine(instanceId: string, pattern: RegExp, timeoutMs = 120_000): Promise<RegExpMatchArray> {
  return waitUntil(`${pattern} on the console of ${instanceId}`, async () => (await stack.consoleText(instanceId)).match(pattern) ?? undefined, timeoutMs, 1000);
}

async function volume(id: string) {
  return (await stack.call("describeVolumes", { VolumeIds: [id] })).Volumes[0];
}

async function waitVolume(id: string, state: string, attachment?: string, timeoutMs = 120_000) {
  return waitUntil(`${id} ${state}${attachment ? `/${attachment}` : ""}`, async () => {
    const v = await volume(id);
    return v.State === state && (attachment === undefined || v.Attachments[0]?.State === attachment) ? v : undefined;
  }, timeoutMs, 500);
}

async function waitSnapshot(id: string, timeoutMs = 180_000) {
  return waitUntil(`${id} completed`, async () => {
    const [s] = (await stack.call("describeSnapshots", { SnapshotIds: [id] })).Snapshots;
    if (s.State === "error") throw new Error(`snapshot ${id} failed: ${s.StateMessage}`);
    return s.State === "completed" ? s : undefined;
  }, timeoutMs, 500);
}

async function waitGone(method: "describeVolumes" | "describeSnapshots", field: string, id: string) {
  await waitUntil(`${id} gone`, async () => stack.call(method, { [field]: [id] }).then(() => false, (e: { details?: string }) => /NotFound/.test(e.details ?? "")), 120_000, 500);
}

/** Every qcow2 file of the run's stores, and what `qemu-img check` says of each. */
function storeFiles(): { file: string; clean: boolean }[] {
  const dirs = [join(stack.volumeStoreDir("lab-1a"), "volumes"), join(stack.snapshotStoreDir, "snapshots")];
  return dirs.flatMap((d) => readdirSync(d).map((f) => join(d, f))).map((file) => {
    try {
      execFileSync("qemu-img", ["check", "-U", "-q", file], { stdio: "pipe" });
      return { file, clean: true };
    } catch {
      return { file, clean: false };
    }
  });
}

beforeAll(async () => {
  await stack.start();
  // Two hosts on one kernel: each serves its own subnet (one bridge per
  // subnet) with its own chain prefix, as two machines would.
  await stack.addAgent({ name: "vola", driver: "libvirt", capacity: { vcpus: 2, memoryMib: 2048, diskGib: 20 } });
  await stack.addAgent({ name: "volb", driver: "libvirt", capacity: { vcpus: 2, memoryMib: 2048, diskGib: 20 }, extraEnv: { CIRRUS_NET_PREFIX: stack.altNetPrefix } });
  imageId = await stack.registerTestImage();
  const [vpc] = (await stack.call("describeVpcs", {})).Vpcs;
  const second = (await stack.call("createSubnet", { VpcId: vpc.VpcId, CidrBlock: stack.defaultVpcCidr.replace(/\.0\.0\/16$/, ".128.0/24"), AvailabilityZone: "lab-1a" })).Subnet;
  const launch = async (subnetId?: string) => (await stack.call("runInstances", {
    ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, UserData: Buffer.from(WATCHER).toString("base64"), ...(subnetId ? { SubnetId: subnetId } : {}),
  })).Instances[0].InstanceId as string;
  // Spread placement puts the second on the emptier host.
  a = await launch();
  b = await launch(second.SubnetId);
  await stack.waitForState([a, b], "running", 180_000);
  for (const id of [a, b]) await consoleLine(id, new RegExp(`CIRRUS-USERDATA-BEGIN instance-id=${id}`));
}, 400_000);
afterAll(() => stack.stop());

describe("volumes and snapshots with real guests", () => {
  it("the two instances run on the two hosts", async () => {
    const { rows } = await stack.pool.query("SELECT DISTINCT host_id FROM instances WHERE id = ANY($1)", [[a, b]]);
    expect(rows).toHaveLength(2);
  });

  let v1 = "";
  let s1 = "";
  let v2 = "";
  it("a new volume hot-attached to instance A is seen by its id, and A writes its marker to it", async () => {
    v1 = (await stack.call("createVolume", { AvailabilityZone: "lab-1a", Size: 1, VolumeType: "gp3" })).VolumeId;
    await waitVolume(v1, "available");
    const att = await stack.call("attachVolume", { VolumeId: v1, InstanceId: a, Device: "/dev/sdf" });
    expect(att).toMatchObject({ State: "attaching", Device: "/dev/sdf", InstanceId: a });
    await waitVolume(v1, "in-use", "attached");
    const seen = await consoleLine(a, new RegExp(`CIRRUS-DISK dev=(vd[b-z]) serial=${serialOf(v1)} sectors=(\\d+) head=\\r?\\n`));
    expect(Number(seen[2])).toBe(2 * 1024 * 1024);
    await consoleLine(a, new RegExp(`CIRRUS-DISK-WRITTEN dev=${seen[1]} serial=${serialOf(v1)}`));
    // Attached once is attached: a second attach is refused.
    await expect(stack.call("attachVolume", { VolumeId: v1, InstanceId: b, Device: "/dev/sdf" })).rejects.toMatchObject({ details: expect.stringMatching(/^VolumeInUse: /) });
  });

  it("a snapshot of the attached volume of the running guest, restored to a volume on the other host, holds the marker", async () => {
    s1 = (await stack.call("createSnapshot", { VolumeId: v1, Description: "live" })).SnapshotId;
    const snap = await waitSnapshot(s1);
    expect(snap).toMatchObject({ VolumeId: v1, VolumeSize: 1, Progress: "100%", Description: "live" });
    expect((await stack.instance(a)).State?.Name).toBe("running");
    expect(stack.domState(a)).toBe("running");
    v2 = (await stack.call("createVolume", { AvailabilityZone: "lab-1a", SnapshotId: s1 })).VolumeId;
    expect((await waitVolume(v2, "available", undefined, 30_000)).Size).toBe(1);
    await stack.call("attachVolume", { VolumeId: v2, InstanceId: b, Device: "/dev/sdf" });
    await waitVolume(v2, "in-use", "attached");
    await consoleLine(b, new RegExp(`CIRRUS-DISK dev=vd[b-z] serial=${serialOf(v2)} sectors=\\d+ head=MARKER-${serialOf(v1)}`));
  });

  it("a detach waits for the guest to let the device go; the volume is then available", async () => {
    const det = await stack.call("detachVolume", { VolumeId: v1, InstanceId: a });
    expect(det).toMatchObject({ State: "detaching", VolumeId: v1, InstanceId: a });
    await consoleLine(a, new RegExp(`CIRRUS-DISK-GONE dev=vd[b-z] serial=${serialOf(v1)}`));
    expect(await waitVolume(v1, "available")).toMatchObject({ Attachments: [] });
  });

  it("a copy of the snapshot outlives the original snapshot and volume, and restores the marker", async () => {
    const s2 = (await stack.call("copySnapshot", { SourceSnapshotId: s1, SourceRegion: "lab-1" })).SnapshotId;
    expect(await waitSnapshot(s2)).toMatchObject({ VolumeId: "vol-ffffffff", VolumeSize: 1 });
    await stack.call("deleteVolume", { VolumeId: v1 });
    await stack.call("deleteSnapshot", { SnapshotId: s1 });
    await waitGone("describeVolumes", "VolumeIds", v1);
    await waitGone("describeSnapshots", "SnapshotIds", s1);
    const v3 = (await stack.call("createVolume", { AvailabilityZone: "lab-1a", SnapshotId: s2, Size: 2 })).VolumeId;
    await waitVolume(v3, "available", undefined, 30_000);
    await stack.call("attachVolume", { VolumeId: v3, InstanceId: b, Device: "/dev/sdg" });
    await waitVolume(v3, "in-use", "attached");
    const seen = await consoleLine(b, new RegExp(`CIRRUS-DISK dev=vd[b-z] serial=${serialOf(v3)} sectors=(\\d+) head=MARKER-${serialOf(v1)}`));
    expect(Number(seen[1])).toBe(4 * 1024 * 1024);
    // A forced detach, then everything goes: the stores hold no file and every file was clean.
    await stack.call("detachVolume", { VolumeId: v3, Force: true });
    await waitVolume(v3, "available");
    expect(storeFiles().filter((f) => !f.clean)).toEqual([]);
    await stack.call("terminateInstances", { InstanceIds: [a, b] });
    await stack.waitForState([a, b], "terminated");
    expect(await waitVolume(v2, "available")).toMatchObject({ Attachments: [] });
    for (const v of [v2, v3]) await stack.call("deleteVolume", { VolumeId: v });
    await stack.call("deleteSnapshot", { SnapshotId: s2 });
    for (const v of [v2, v3]) await waitGone("describeVolumes", "VolumeIds", v);
    await waitGone("describeSnapshots", "SnapshotIds", s2);
    await waitUntil("the stores to be empty", async () => storeFiles().length === 0, 60_000, 1000);
  });
});
