// Instance store on a real guest: the libvirt driver with the test AMI under
// TCG, without a NIC. The guest runs a test program instead of its network
// script (testAmiRunning): once per boot it reports every disk with its
// serial, size and first line, then writes a marker to the disk whose serial
// is ephemeral0 when that disk is blank. The test checks the marker in the
// disk's file, that a stop wipes it (the next boot finds the disk blank while
// the root disk kept its boot counter), that a start makes a missing one,
// that a failed create removes the disks it made, and that destroy and
// quarantine leave nothing in the instances directory.
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { LocalRunner } from "../src/runner/local.js";
import { LIBVIRT_URI, TEST_IMAGE_DIRS, testAmiRunning, virsh, removeDomainsNamed } from "./ami-fixture.js";
import { quietLogger } from "./helpers.js";

const { PowerState } = agent;
const PREFIX = `cirrusstore-${process.pid.toString(16)}-`;
const GIB = 1024 ** 3;

/** Replaces /usr/lib/cirrus/network, which the guest's init starts in the background with the instance id. */
const GUEST_PROGRAM = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
boot=$(cat /var/lib/cirrus/boot-count)
first() { head -c 512 "/dev/$1" | tr -cd 'A-Za-z0-9 =._-\\n' | head -n 1; }
for d in /sys/block/vd*; do
  dev=\${d##*/}
  echo "STORETEST-DISK boot=$boot dev=$dev serial=$(cat "$d/serial" 2>/dev/null) sectors=$(cat "$d/size") first=$(first "$dev")"
done
for d in /sys/block/vd*; do
  dev=\${d##*/}
  [ "$(cat "$d/serial" 2>/dev/null)" = ephemeral0 ] && [ -z "$(first "$dev")" ] || continue
  printf 'STORE-MARKER boot=%s\\n' "$boot" | dd of="/dev/$dev" bs=512 count=1 conv=notrunc,sync,fsync 2>/dev/null && echo "STORETEST-WROTE boot=$boot dev=$dev"
done
echo "STORETEST-DONE boot=$boot"
`;

/** The first `n` bytes of a file. */
function head(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

describe("instance store on a test AMI guest (libvirt, TCG)", () => {
  let work: string;
  let instancesDir: string;
  let driver: LibvirtDriver;
  let image: agent.ImageSpec;

  const instanceStore = [{ name: "ephemeral0", target: "vdx", sizeGib: 1 }];
  const spec = (instanceId: string, reuseRootDisk = false): agent.InstanceSpec => ({ instanceId, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image, network: undefined, reuseRootDisk, volumes: [], instanceStore });
  const scratchFile = (instanceId: string) => join(instancesDir, `${PREFIX}${instanceId}.ephemeral0.raw`);
  const filesOf = (instanceId: string) => readdirSync(instancesDir).filter((n) => n.includes(instanceId));
  async function waitFor(id: string, line: string, timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = (await driver.consoleOutput(id)).toString("utf8");
      if (text.includes(line)) return text;
      if (Date.now() > deadline) throw new Error(`no ${line} on the console of ${id} within ${timeoutMs} ms; it reads:\n${text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  /**
   * What the guest reported about ephemeral0 in boot `boot`: its size in
   * sectors, its first line, and its name in the guest, which is the guest
   * kernel's (disks in the order found: vdb here), not the domain's target;
   * hence the serial.
   */
  function scratchSeen(text: string, boot: number): { dev: string; sectors: number; first: string } | undefined {
    const m = new RegExp(`^STORETEST-DISK boot=${boot} dev=(vd[a-z]) serial=ephemeral0 sectors=(\\d+) first=(.*)$`, "m").exec(text);
    return m ? { dev: m[1]!, sectors: Number(m[2]), first: m[3]! } : undefined;
  }

  beforeAll(() => {
    work = mkdtempSync("/var/lib/cirrus/test-instance-store-");
    chmodSync(work, 0o755);
    const ami = testAmiRunning(GUEST_PROGRAM, work);
    image = ami.image;
    instancesDir = join(work, "instances");
    driver = new LibvirtDriver({ runner: new LocalRunner(), uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: [...TEST_IMAGE_DIRS, ami.imageDir], privateDirs: [], log: quietLogger() });
  }, 600_000);

  afterAll(async () => {
    removeDomainsNamed(PREFIX);
    await driver?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const id = newId("i");

  it("a launch gives the guest a blank disk with serial ephemeral0 of the spec's size (target vdx), which it writes", async () => {
    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    const file = scratchFile(id);
    expect(statSync(file).size).toBe(GIB);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(existsSync(join(instancesDir, `${PREFIX}${id}.ephemeral0.staged.raw`))).toBe(false);
    expect(virsh("domblklist", "--details", PREFIX + id)).toMatch(new RegExp(`file\\s+disk\\s+vdx\\s+${file}`));
    const text = await waitFor(id, "STORETEST-DONE boot=1");
    expect(text).toContain(`CIRRUS-BOOT instance-id=${id} boot=1`);
    const seen = scratchSeen(text, 1);
    expect(seen).toMatchObject({ sectors: GIB / 512, first: "" });
    expect(text).toContain(`STORETEST-WROTE boot=1 dev=${seen!.dev}`);
    // Raw and cache='none': the guest's synced write is in the file itself.
    expect(head(file, 20).toString("latin1")).toBe("STORE-MARKER boot=1\n");
    expect(await driver.listArtifacts()).toEqual([id]);
  }, 300_000);

  it("a stop wipes it: the next start reads it blank while the root disk kept its boot counter", async () => {
    const file = scratchFile(id);
    expect(await driver.stopInstance(id, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(statSync(file).size).toBe(GIB);
    expect(statSync(file).blocks).toBe(0);
    expect(head(file, 512).every((b) => b === 0)).toBe(true);
    // A repeated stop (the domain off already) wipes again and is otherwise a no-op.
    expect(await driver.stopInstance(id, { force: false, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(statSync(file).size).toBe(GIB);

    expect(await driver.createInstance(spec(id, true))).toBe(PowerState.POWER_STATE_RUNNING);
    const text = await waitFor(id, "STORETEST-DONE boot=2");
    expect(text).toContain(`CIRRUS-BOOT instance-id=${id} boot=2`);
    const seen = scratchSeen(text, 2);
    expect(seen).toMatchObject({ sectors: GIB / 512, first: "" });
    expect(text).toContain(`STORETEST-WROTE boot=2 dev=${seen!.dev}`);
  }, 300_000);

  it("a start makes a missing disk blank, for a shut-off domain and for one that is gone, rather than failing", async () => {
    for (const [boot, lost] of [[3, false], [4, true]] as const) {
      expect(await driver.stopInstance(id, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
      rmSync(scratchFile(id));
      // The domain lost while stopped: the start defines it again over the root disk.
      if (lost) virsh("undefine", PREFIX + id);
      expect(await driver.createInstance(spec(id, true))).toBe(PowerState.POWER_STATE_RUNNING);
      expect(statSync(scratchFile(id)).size).toBe(GIB);
      const text = await waitFor(id, `STORETEST-DONE boot=${boot}`);
      expect(text).toContain(`CIRRUS-BOOT instance-id=${id} boot=${boot}`);
      expect(scratchSeen(text, boot)).toMatchObject({ sectors: GIB / 512, first: "" });
    }
  }, 300_000);

  it("destroy removes the disk with the instance's other files", async () => {
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(filesOf(id)).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
  }, 60_000);

  it("a create that fails removes the disks it made: all of a launch's, a start's missing one but not its root disk", async () => {
    const other = newId("i");
    // Defined, then refused by libvirt (i440fx has at most 255 vCPUs).
    expect(String(await driver.createInstance({ ...spec(other), vcpus: 256 }).catch((e: unknown) => e))).toMatch(/Maximum CPUs/);
    expect(filesOf(other)).toEqual([]);
    expect(await driver.createInstance(spec(other))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(await driver.stopInstance(other, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    virsh("undefine", PREFIX + other);
    rmSync(scratchFile(other));
    expect(String(await driver.createInstance({ ...spec(other, true), vcpus: 256 }).catch((e: unknown) => e))).toMatch(/Maximum CPUs/);
    expect(filesOf(other).sort()).toEqual([`${PREFIX}${other}.console.log`, `${PREFIX}${other}.qcow2`]);
    expect(await driver.destroyInstance(other)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(filesOf(other)).toEqual([]);
  }, 60_000);

  it("quarantine moves the disk with the overlay", async () => {
    const other = newId("i");
    expect(await driver.createInstance(spec(other))).toBe(PowerState.POWER_STATE_RUNNING);
    await driver.quarantineInstance(other);
    expect(filesOf(other)).toEqual([]);
    const moved = readdirSync(join(instancesDir, "quarantine")).filter((n) => n.includes(other));
    expect(moved.map((n) => n.replace(/\.\d+\./, ".<at>."))).toEqual(expect.arrayContaining([`${PREFIX}${other}.<at>.qcow2`, `${PREFIX}${other}.<at>.ephemeral0.raw`]));
    expect(await driver.purgeQuarantine(0)).toEqual(expect.arrayContaining(moved));
  }, 60_000);
});
