// ModifyVolume on a real guest: the libvirt driver and the directory stores
// with the test AMI under TCG, without a NIC. The guest runs a test program
// instead of its network script (testAmiRunning): it reports every volume
// disk's size in sectors whenever it changes, and in rounds times a direct
// 8 MiB read of vdb and of vdc (uptime before and after, in centiseconds),
// so a throughput cap shows as a slower read of the capped disk than of
// the uncapped one in the same round. No timing bound is asserted, only
// ratios: under TCG everything is slow, and the reads are sized so that a
// cap of 2 MiB/s dominates them (measured: 20–30 ms uncapped, 3.5 s capped).
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { LocalRunner } from "../src/runner/local.js";
import type { RunOptions, RunResult } from "../src/runner/types.js";
import { DirectoryVolumeStore } from "../src/storage/directory.js";
import { DirectorySnapshotStore } from "../src/storage/directory-snapshots.js";
import { LIBVIRT_URI, TEST_IMAGE_DIRS, testAmiRunning, virsh, removeDomainsNamed } from "./ami-fixture.js";
import { quietLogger } from "./helpers.js";

const { PowerState } = agent;
const PREFIX = `cirrusmod-${process.pid.toString(16)}-`;
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const NO_QOS = { totalIopsSec: 0, totalBytesSec: 0, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 };
/** 8 MiB at 2 MiB/s: about 3.5 s (QEMU lets the first request through at once), where an uncapped read of unallocated clusters takes tens of ms even under TCG. */
const CAP = { ...NO_QOS, totalBytesSec: 2 * MIB };
const RAISED = { ...NO_QOS, totalBytesSec: 1024 * MIB };

/** Replaces /usr/lib/cirrus/network, which the guest's init starts in the background with the instance id. */
const GUEST_PROGRAM = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
seen="|"
round=0
cs() { read -r up _ < /proc/uptime; echo "\${up%.*}\${up#*.}"; }
while :; do
  for d in /sys/block/vd[b-z]; do
    [ -e "$d/size" ] || continue
    line="dev=\${d##*/} serial=$(cat "$d/serial" 2>/dev/null) sectors=$(cat "$d/size")"
    case "$seen" in *"|$line|"*) continue ;; esac
    seen="$seen$line|"
    echo "MODTEST-SIZE $line"
  done
  round=$((round + 1))
  for dev in vdb vdc; do
    [ -b "/dev/$dev" ] || continue
    a=$(cs)
    dd if="/dev/$dev" of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null || continue
    b=$(cs)
    echo "MODTEST-READ round=$round dev=$dev cs=$((b - a))"
  done
  sleep 1
done
`;

/** The local runner, remembering the virsh commands it ran: what a repeated call must not do again. */
class RecordingRunner extends LocalRunner {
  readonly virshCommands: string[] = [];
  override run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    const i = argv.indexOf("virsh");
    // env LC_ALL=C virsh -c <uri> <command> …
    if (i >= 0) this.virshCommands.push(argv[i + 3]!);
    return super.run(argv, opts);
  }
}

describe("ModifyVolume on a running test AMI guest (libvirt, TCG)", () => {
  let work: string;
  let driver: LibvirtDriver;
  let runner: RecordingRunner;
  let volumes: DirectoryVolumeStore;
  let image: agent.ImageSpec;

  const id = newId("i");
  const V = newId("vol");
  const W = newId("vol");
  const console = async () => (await driver.consoleOutput(id)).toString("utf8");
  async function waitFor(line: RegExp | string, timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await console();
      if (typeof line === "string" ? text.includes(line) : line.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`no ${String(line)} on the console of ${id} within ${timeoutMs} ms; it reads:\n${text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const serialOf = (volumeId: string) => volumeId.replace("-", "");
  const sizeLine = (dev: string, volumeId: string, gib: number) => `MODTEST-SIZE dev=${dev} serial=${serialOf(volumeId)} sectors=${(gib * GIB) / 512}`;
  /** The agent's ModifyVolume for a volume attached to the instance (server.ts): the driver, or the store offline. */
  async function modify(volumeId: string, sizeGiB: number, qos: agent.VolumeQos): Promise<boolean> {
    const resizeOffline = () => volumes.resize(volumeId, sizeGiB);
    const attached = await driver.modifyAttachedVolume(id, { volumeId, sizeBytes: sizeGiB * GIB, qos }, resizeOffline);
    if (!attached) await resizeOffline();
    return attached;
  }
  /** The read times (centiseconds) of vdb and vdc in the first round that started after every round on the console now. */
  async function nextRound(): Promise<{ vdb: number; vdc: number }> {
    const rounds = (text: string) => [...text.matchAll(/^MODTEST-READ round=(\d+) dev=(vd[bc]) cs=(\d+)\r?$/gm)].map((m) => ({ round: Number(m[1]), dev: m[2]!, cs: Number(m[3]) }));
    // The round in progress may have read a disk before the change: the one after it is the first wholly after.
    const after = Math.max(0, ...rounds(await console()).map((r) => r.round)) + 2;
    const text = await waitFor(new RegExp(`^MODTEST-READ round=${after} dev=vdc `, "m"), 180_000);
    const of = (dev: string) => rounds(text).find((r) => r.round === after && r.dev === dev)!.cs;
    return { vdb: of("vdb"), vdc: of("vdc") };
  }
  const iotune = (flags: string[]) => {
    const disk = virsh("dumpxml", ...flags, PREFIX + id).split("</disk>").find((d) => d.includes(`<serial>${serialOf(W)}</serial>`))!;
    return /<iotune>[\s\S]*<\/iotune>/.exec(disk)?.[0] ?? "";
  };

  beforeAll(() => {
    work = mkdtempSync("/var/lib/cirrus/test-modify-");
    chmodSync(work, 0o755);
    const ami = testAmiRunning(GUEST_PROGRAM, work);
    image = ami.image;
    runner = new RecordingRunner();
    driver = new LibvirtDriver({ runner, uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir: join(work, "instances"), imageDirs: [...TEST_IMAGE_DIRS, ami.imageDir], privateDirs: [], log: quietLogger() });
    const storeRunner = new LocalRunner();
    const snapshots = new DirectorySnapshotStore({ runner: storeRunner, root: join(work, "region"), owner: "test", transferDirs: [join(work, "transfer")], privateDirs: [join(work, "zone")], log: quietLogger() });
    volumes = new DirectoryVolumeStore({ runner: storeRunner, root: join(work, "zone"), owner: "test", snapshots });
  }, 600_000);

  afterAll(async () => {
    removeDomainsNamed(PREFIX);
    await driver?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("grows a volume attached to the running guest (a crashed live snapshot's overlay merged back first), which sees the new size without a reboot; the same size again is a no-op, a shrink refused", async () => {
    await volumes.create(V, 1);
    await volumes.create(W, 1);
    const spec = { instanceId: id, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image, network: undefined, reuseRootDisk: false, volumes: [], instanceStore: [] };
    expect(await driver.createInstance(spec)).toBe(PowerState.POWER_STATE_RUNNING);
    await waitFor(`CIRRUS-BOOT instance-id=${id} boot=1`);
    await driver.attachVolume(id, { volumeId: V, target: "vdb", qos: NO_QOS }, (await volumes.describe(V))!.disk);
    await driver.attachVolume(id, { volumeId: W, target: "vdc", qos: NO_QOS }, (await volumes.describe(W))!.disk);
    await waitFor(sizeLine("vdb", V, 1));

    // Where a crash mid-way through a live snapshot leaves the guest: on an overlay, the volume's file its backing.
    const overlay = volumes.liveOverlayPath(V, newId("snap"));
    virsh("snapshot-create-as", "--domain", PREFIX + id, "--disk-only", "--no-metadata", "--atomic", "--diskspec", `vdb,snapshot=external,file=${overlay}`, "--diskspec", "vda,snapshot=no", "--diskspec", "vdc,snapshot=no");
    expect(await modify(V, 3, NO_QOS)).toBe(true);
    await waitFor(sizeLine("vdb", V, 3));
    // Merged back first: the volume's own file grew.
    expect(virsh("domblklist", PREFIX + id)).not.toContain("live.qcow2");
    expect(existsSync(overlay)).toBe(false);
    expect((await volumes.describe(V))?.sizeBytes).toBe(3 * GIB);
    const before = runner.virshCommands.length;
    expect(await modify(V, 3, NO_QOS)).toBe(true);
    expect(runner.virshCommands.slice(before).filter((c) => c === "blockresize" || c === "blkdeviotune")).toEqual([]);
    await expect(modify(V, 2, NO_QOS)).rejects.toMatchObject({ kind: "InvalidArgument" });
    expect((await volumes.describe(V))?.sizeBytes).toBe(3 * GIB);
    const text = await console();
    expect(text).not.toContain("boot=2");
    expect(text).not.toContain(`sectors=${(2 * GIB) / 512}`);
  }, 300_000);

  it("caps a volume's throughput live: the capped disk reads at least twice as slowly as the uncapped one, and fast again once the cap is raised", async () => {
    const uncapped = await nextRound();
    expect(await modify(W, 1, CAP)).toBe(true);
    for (const flags of [[], ["--inactive"]]) expect(iotune(flags)).toContain(`<total_bytes_sec>${CAP.totalBytesSec}</total_bytes_sec>`);
    const capped = await nextRound();
    expect(capped.vdc).toBeGreaterThanOrEqual(2 * capped.vdb);
    expect(capped.vdc).toBeGreaterThanOrEqual(2 * uncapped.vdc);

    const before = runner.virshCommands.length;
    expect(await modify(W, 1, CAP)).toBe(true);
    expect(runner.virshCommands.slice(before)).not.toContain("blkdeviotune");
    expect(await modify(W, 1, RAISED)).toBe(true);
    for (const flags of [[], ["--inactive"]]) expect(iotune(flags)).toContain(`<total_bytes_sec>${RAISED.totalBytesSec}</total_bytes_sec>`);
    const raised = await nextRound();
    expect(2 * raised.vdc).toBeLessThanOrEqual(capped.vdc);
  }, 600_000);

  it("a shut-off domain's volume is grown offline and its QoS set in the persistent definition; the guest sees both after start", async () => {
    expect(await driver.stopInstance(id, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(await modify(W, 2, CAP)).toBe(true);
    expect((await volumes.describe(W))?.sizeBytes).toBe(2 * GIB);
    expect(iotune(["--inactive"])).toContain(`<total_bytes_sec>${CAP.totalBytesSec}</total_bytes_sec>`);
    expect(await driver.startInstance(id)).toBe(PowerState.POWER_STATE_RUNNING);
    await waitFor(new RegExp(`boot=2[\\s\\S]*${sizeLine("vdc", W, 2)}`));
    expect(iotune([])).toContain(`<total_bytes_sec>${CAP.totalBytesSec}</total_bytes_sec>`);
    // Detached: the store grows it offline, the domain is not touched.
    await driver.detachVolume(id, W, { force: false, waitMs: 30_000 });
    expect(await modify(W, 3, NO_QOS)).toBe(false);
    expect((await volumes.describe(W))?.sizeBytes).toBe(3 * GIB);
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    for (const v of [V, W]) await volumes.delete(v);
  }, 300_000);
});
