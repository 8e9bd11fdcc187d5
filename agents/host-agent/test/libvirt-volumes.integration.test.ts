// EBS volumes on real guests: the libvirt driver and the directory stores
// with the test AMI under TCG, without a NIC (no packet leaves anything).
// The guest runs a test program instead of its network script
// (testAmiRunning): it reports every disk it sees with its serial, writes
// marker A to the first volume (vdb) when it appears, keeps writing to it
// until a disk appears at vdc, and then writes marker B. The test reads the markers back from the volume's
// file and from snapshots once nobody writes them.
import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { LocalRunner } from "../src/runner/local.js";
import { DirectoryVolumeStore } from "../src/storage/directory.js";
import { DirectorySnapshotStore } from "../src/storage/directory-snapshots.js";
import { LIBVIRT_URI, TEST_IMAGE_DIRS, testAmiRunning, virsh, domainsNamed, removeDomainsNamed } from "./ami-fixture.js";
import { quietLogger } from "./helpers.js";

const { PowerState } = agent;
const PREFIX = `cirrusvol-${process.pid.toString(16)}-`;
const NO_QOS = { totalIopsSec: 0, totalBytesSec: 0, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 };

/** Replaces /usr/lib/cirrus/network, which the guest's init starts in the background with the instance id. */
const GUEST_PROGRAM = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
seen=" "
wrote_a=""
n=1015
put() { printf '%s\\n' "$2" | dd of=/dev/vdb bs=512 seek="$1" count=1 conv=notrunc,sync,fsync 2>/dev/null; }
while :; do
  for d in /sys/block/vd*; do
    dev=\${d##*/}
    case "$seen" in *" $dev "*) continue ;; esac
    [ -b "/dev/$dev" ] || continue
    seen="$seen$dev "
    echo "VOLTEST-DISK dev=$dev serial=$(cat "$d/serial" 2>/dev/null)"
  done
  for dev in $seen; do [ -e "/sys/block/$dev" ] || { seen=$(echo "$seen" | sed "s/ $dev / /"); echo "VOLTEST-GONE dev=$dev"; }; done
  if [ -z "$wrote_a" ] && [ -b /dev/vdb ]; then
    put 0 "MARKER-A $(cat /sys/block/vdb/serial)" && wrote_a=1 && echo "VOLTEST-WROTE A"
  elif [ "$wrote_a" = 1 ] && [ -b /dev/vdc ]; then
    put 2048 "MARKER-B" && wrote_a=2 && echo "VOLTEST-WROTE B"
  elif [ "$wrote_a" = 1 ]; then
    # The guest keeps writing while a snapshot is taken: sectors 8..1023 in turn.
    n=$(( (n + 1) % 1016 ))
    put $((8 + n)) "BUSY $n"
    continue
  fi
  sleep 0.2
done
`;

const ourDomains = () => domainsNamed(PREFIX);

/** 512 bytes at `sector` of a qcow2 image (its backing chain read through), as text up to the first NUL. */
function sectorText(image: string, sector: number): string {
  const raw = `${image}.raw`;
  // Sparse: a mostly empty 1 GiB volume converts in a moment.
  execFileSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", "--", image, raw]);
  const fd = openSync(raw, "r");
  try {
    const buf = Buffer.alloc(512);
    readSync(fd, buf, 0, 512, sector * 512);
    return buf.toString("latin1").split("\0")[0]!;
  } finally {
    closeSync(fd);
    rmSync(raw, { force: true });
  }
}

describe("volumes on a running test AMI guest (libvirt, TCG)", () => {
  let work: string;
  let driver: LibvirtDriver;
  let volumes: DirectoryVolumeStore;
  let snapshots: DirectorySnapshotStore;
  let image: agent.ImageSpec;

  const spec = (instanceId: string): agent.InstanceSpec => ({ instanceId, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image, network: undefined, reuseRootDisk: false, volumes: [], instanceStore: [] });
  const console = async (id: string) => (await driver.consoleOutput(id)).toString("utf8");
  async function waitFor(id: string, line: RegExp | string, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await console(id);
      if (typeof line === "string" ? text.includes(line) : line.test(text)) return;
      if (Date.now() > deadline) throw new Error(`no ${String(line)} on the console of ${id} within ${timeoutMs} ms; it reads:\n${text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const disk = async (volumeId: string) => (await volumes.describe(volumeId))!.disk;
  const serialOf = (volumeId: string) => volumeId.replace("-", "");
  /** The files the running domain's disks use now. */
  const blockList = (name: string) => virsh("domblklist", "--details", name);
  const volumeDir = () => join(work, "zone", "volumes");

  beforeAll(() => {
    work = mkdtempSync("/var/lib/cirrus/test-volumes-");
    chmodSync(work, 0o755);
    const ami = testAmiRunning(GUEST_PROGRAM, work);
    image = ami.image;
    const instancesDir = join(work, "instances");
    driver = new LibvirtDriver({ runner: new LocalRunner(), uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: [...TEST_IMAGE_DIRS, ami.imageDir], privateDirs: [], log: quietLogger() });
    const runner = new LocalRunner();
    snapshots = new DirectorySnapshotStore({ runner, root: join(work, "region"), owner: "test", transferDirs: [join(work, "transfer")], privateDirs: [join(work, "zone")], log: quietLogger() });
    volumes = new DirectoryVolumeStore({ runner, root: join(work, "zone"), owner: "test", snapshots });
  }, 600_000);

  afterAll(async () => {
    removeDomainsNamed(PREFIX);
    await driver?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const id = newId("i");
  const V = newId("vol");
  const W = newId("vol");
  const S = newId("snap");

  it("hot-attaches a volume to a running guest, which sees it at vdb with the volume id as its serial and writes to it", async () => {
    await volumes.create(V, 1);
    await volumes.create(W, 1);
    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    await waitFor(id, `CIRRUS-BOOT instance-id=${id} boot=1`);
    await waitFor(id, "VOLTEST-DISK dev=vda");
    const attachment = { volumeId: V, target: "vdb", qos: { ...NO_QOS, totalIopsSec: 2000 } };
    await driver.attachVolume(id, attachment, await disk(V));
    await driver.attachVolume(id, attachment, await disk(V)); // attached already: no change
    await waitFor(id, `VOLTEST-DISK dev=vdb serial=${serialOf(V)}`);
    await waitFor(id, "VOLTEST-WROTE A");
    for (const flags of [[], ["--inactive"]]) {
      const xml = virsh("dumpxml", ...flags, PREFIX + id);
      expect(xml).toContain(`<serial>${serialOf(V)}</serial>`);
      expect(xml).toMatch(/<total_iops_sec>2000<\/total_iops_sec>/);
      expect(xml).toContain("cache='none'");
    }
    await expect(driver.attachVolume(id, { ...attachment, target: "vdc" }, await disk(V))).rejects.toMatchObject({ kind: "Conflict" });
  }, 180_000);

  it("a live snapshot while the guest writes holds what was written before it and not what came after; the guest runs on the volume's file again, no overlay left", async () => {
    const overlay = volumes.liveOverlayPath(V, S);
    let frozenSource = "";
    const taken = await driver.snapshotAttachedVolume(id, { volumeId: V, disk: await disk(V), overlay }, async (image) => {
      frozenSource = blockList(PREFIX + id);
      // The guest keeps writing into the overlay meanwhile.
      await new Promise((r) => setTimeout(r, 1500));
      return volumes.snapshotFrom(V, S, image);
    });
    expect(taken?.snapshotId).toBe(S);
    expect(frozenSource).toContain(overlay);
    // Marker B comes after the snapshot: the guest writes it once vdc appears.
    await driver.attachVolume(id, { volumeId: W, target: "vdc", qos: NO_QOS }, await disk(W));
    await waitFor(id, "VOLTEST-WROTE B");
    expect(virsh("domstate", PREFIX + id).trim()).toBe("running");
    const blk = blockList(PREFIX + id);
    expect(blk).toContain((await disk(V)).path);
    expect(blk).not.toContain("live.qcow2");
    expect(virsh("dumpxml", "--inactive", PREFIX + id)).not.toContain("live.qcow2");
    expect(existsSync(overlay)).toBe(false);
    expect(readdirSync(volumeDir()).sort()).toEqual([`${V}.qcow2`, `${W}.qcow2`].sort());

    const copy = newId("vol");
    await volumes.createFromSnapshot(copy, S, 1);
    const copyFile = (await disk(copy)).path;
    expect(sectorText(copyFile, 0)).toBe(`MARKER-A ${serialOf(V)}\n`);
    expect(sectorText(copyFile, 2048)).toBe("");
    await volumes.delete(copy);
  }, 180_000);

  it("a retry after a crash that left the guest on the overlay skips the freeze; a failed read merges the overlay back at once", async () => {
    const [retried, failed] = [newId("snap"), newId("snap")];
    const overlay = volumes.liveOverlayPath(V, retried);
    // Where a crash right after the freeze leaves the guest: on the overlay, the volume's file its backing.
    virsh("snapshot-create-as", "--domain", PREFIX + id, "--disk-only", "--no-metadata", "--atomic", "--diskspec", `vdb,snapshot=external,file=${overlay}`, "--diskspec", "vda,snapshot=no", "--diskspec", "vdc,snapshot=no");
    let sourceDuringTake = "";
    await driver.snapshotAttachedVolume(id, { volumeId: V, disk: await disk(V), overlay }, async (image) => {
      sourceDuringTake = blockList(PREFIX + id);
      return volumes.snapshotFrom(V, retried, image);
    });
    expect(sourceDuringTake).toContain(overlay);
    expect(blockList(PREFIX + id)).not.toContain("live.qcow2");
    expect(existsSync(overlay)).toBe(false);
    const boom = new Error("injected failure of the store");
    await expect(driver.snapshotAttachedVolume(id, { volumeId: V, disk: await disk(V), overlay: volumes.liveOverlayPath(V, failed) }, () => Promise.reject(boom))).rejects.toBe(boom);
    expect(blockList(PREFIX + id)).not.toContain("live.qcow2");
    expect(readdirSync(volumeDir()).sort()).toEqual([`${V}.qcow2`, `${W}.qcow2`].sort());
    await snapshots.deleteSnapshot(retried);
  }, 120_000);

  it("detach waits for the guest to release the volumes; the volume's file then holds every write, and qemu-img check is clean", async () => {
    await driver.detachVolume(id, W, { force: false, waitMs: 20_000 });
    await driver.detachVolume(id, V, { force: false, waitMs: 20_000 });
    await driver.detachVolume(id, V, { force: false, waitMs: 20_000 }); // not attached: succeeds
    await waitFor(id, "VOLTEST-GONE dev=vdb");
    for (const flags of [[], ["--inactive"]]) expect(virsh("dumpxml", ...flags, PREFIX + id)).not.toContain(serialOf(V));
    // QEMU has let go: an offline operation (which QEMU's lock would refuse otherwise) is allowed.
    const file = (await disk(V)).path;
    expect(sectorText(file, 0)).toBe(`MARKER-A ${serialOf(V)}\n`);
    expect(sectorText(file, 2048)).toBe("MARKER-B\n");
    expect(sectorText(file, 8)).toMatch(/^BUSY \d+\n$/);
    expect((await volumes.check()).filter((r) => r.status !== "clean")).toEqual([]);
    expect((await snapshots.check()).filter((r) => r.status !== "clean")).toEqual([]);
  }, 120_000);

  it("a volume attached to a shut-off domain is in its persistent definition and the guest sees it after start", async () => {
    const fresh = newId("vol");
    await volumes.create(fresh, 1);
    expect(await driver.stopInstance(id, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    await driver.attachVolume(id, { volumeId: fresh, target: "vdb", qos: NO_QOS }, await disk(fresh));
    expect(virsh("dumpxml", "--inactive", PREFIX + id)).toContain(`<serial>${serialOf(fresh)}</serial>`);
    expect(await driver.startInstance(id)).toBe(PowerState.POWER_STATE_RUNNING);
    await waitFor(id, `CIRRUS-BOOT instance-id=${id} boot=2`);
    await waitFor(id, new RegExp(`boot=2[\\s\\S]*VOLTEST-DISK dev=vdb serial=${serialOf(fresh)}`));
    // A shut-off domain's detach is immediate.
    await driver.stopInstance(id, { force: true, timeoutMs: 0 });
    await driver.detachVolume(id, fresh, { force: false, waitMs: 1000 });
    expect(virsh("dumpxml", "--inactive", PREFIX + id)).not.toContain(serialOf(fresh));
    await volumes.delete(fresh);
  }, 180_000);

  it("a domain (re)defined by createInstance carries its spec's volumes; destroying it never deletes a volume", async () => {
    const other = newId("i");
    const files = new Map([[V, await disk(V)]]);
    expect(await driver.createInstance({ ...spec(other), volumes: [{ volumeId: V, target: "vdb", qos: NO_QOS }] }, files)).toBe(PowerState.POWER_STATE_RUNNING);
    await waitFor(other, `VOLTEST-DISK dev=vdb serial=${serialOf(V)}`);
    expect(await driver.destroyInstance(other)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(ourDomains()).toEqual([]);
    expect(existsSync((await disk(V)).path)).toBe(true);
    expect(sectorText((await disk(V)).path, 0)).toBe(`MARKER-A ${serialOf(V)}\n`);
    for (const v of [V, W]) await volumes.delete(v);
    await snapshots.deleteSnapshot(S);
    expect(readdirSync(volumeDir())).toEqual([]);
  }, 180_000);
});
