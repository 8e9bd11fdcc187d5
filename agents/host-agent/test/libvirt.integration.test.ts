// The libvirt driver against the real libvirtd on this machine, booting the
// test AMI (deploy/build-test-ami.sh) under TCG. Uses its own domain prefix
// and instances directory, and removes every domain with that prefix after.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { DriverError } from "../src/driver/types.js";
import { LocalRunner } from "../src/runner/local.js";
import { LIBVIRT_URI, TEST_IMAGE_DIRS, testAmi, testInstancesDir, virsh, domainsNamed, removeDomainsNamed } from "./ami-fixture.js";
import { quietLogger } from "./helpers.js";

const { PowerState } = agent;
const PREFIX = `cirrustest-${process.pid.toString(16)}-`;

const ourDomains = () => domainsNamed(PREFIX);

describe("LibvirtDriver with the test AMI under TCG", () => {
  let instancesDir: string;
  let driver: LibvirtDriver;
  let spec: agent.InstanceSpec;
  const id = newId("i");

  /** Boot numbers this instance has printed on its console so far. */
  async function boots(): Promise<number[]> {
    const text = (await driver.consoleOutput(id)).toString("utf8");
    return [...text.matchAll(/CIRRUS-BOOT instance-id=(\S+) boot=(\d+)/g)].map((m) => {
      expect(m[1]).toBe(id);
      return Number(m[2]);
    });
  }

  async function waitForBoot(n: number, timeoutMs = 90_000): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = await boots();
      if (seen.includes(n)) return seen;
      if (Date.now() > deadline) throw new Error(`no CIRRUS-BOOT boot=${n} within ${timeoutMs} ms; console has boots ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  beforeAll(() => {
    const image = testAmi();
    instancesDir = testInstancesDir();
    driver = new LibvirtDriver({ runner: new LocalRunner(), uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: TEST_IMAGE_DIRS, privateDirs: [], log: quietLogger() });
    spec = { instanceId: id, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image, network: undefined, reuseRootDisk: false, volumes: [], instanceStore: [] };
  }, 600_000);

  afterAll(async () => {
    removeDomainsNamed(PREFIX);
    await driver?.close();
    if (instancesDir) rmSync(instancesDir, { recursive: true, force: true });
  });

  it("createInstance leaves a running domain with its overlay, and the guest boots with its id", async () => {
    expect(await driver.createInstance(spec)).toBe(PowerState.POWER_STATE_RUNNING);
    expect(virsh("domstate", PREFIX + id).trim()).toBe("running");
    const overlay = join(instancesDir, `${PREFIX}${id}.qcow2`);
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--force-share", "--output=json", overlay], { encoding: "utf8" })) as Record<string, unknown>;
    expect(info["backing-filename"]).toBe(spec.image!.rootPath);
    expect(info["virtual-size"]).toBe(1024 ** 3);
    expect(await driver.list()).toEqual([{ instanceId: id, powerState: PowerState.POWER_STATE_RUNNING }]);
    expect(await driver.listArtifacts()).toEqual([id]);
    expect(await waitForBoot(1)).toEqual([1]);
    // Other users can neither read the disk nor list the directory.
    expect(statSync(overlay).mode & 0o777).toBe(0o600);
    expect(statSync(instancesDir).mode & 0o777).toBe(0o711);
    expect(statSync(join(instancesDir, `${PREFIX}${id}.console.log`)).mode & 0o777).toBe(0o600);
  }, 120_000);

  it("createInstance again changes nothing: one domain, no second boot", async () => {
    expect(await driver.createInstance(spec)).toBe(PowerState.POWER_STATE_RUNNING);
    expect(ourDomains()).toEqual([PREFIX + id]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await boots()).toEqual([1]);
  }, 30_000);

  it("stopInstance shuts the guest down through ACPI and keeps the domain and disk", async () => {
    expect(await driver.stopInstance(id, { force: false, timeoutMs: 20_000 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(virsh("domstate", PREFIX + id).trim()).toBe("shut off");
    expect(ourDomains()).toEqual([PREFIX + id]);
    expect(existsSync(join(instancesDir, `${PREFIX}${id}.qcow2`))).toBe(true);
    // The guest's ACPI handler printed this, so the graceful path (not the forced one) stopped it.
    expect((await driver.consoleOutput(id)).toString()).toContain(`CIRRUS-SHUTDOWN instance-id=${id}`);
    expect(await driver.stopInstance(id, { force: false, timeoutMs: 1000 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(await driver.list()).toEqual([{ instanceId: id, powerState: PowerState.POWER_STATE_SHUT_OFF }]);
  }, 60_000);

  it("startInstance boots it again from the same disk", async () => {
    expect(await driver.startInstance(id)).toBe(PowerState.POWER_STATE_RUNNING);
    expect(await driver.startInstance(id)).toBe(PowerState.POWER_STATE_RUNNING);
    expect(await waitForBoot(2)).toEqual([1, 2]);
  }, 120_000);

  it("rebootInstance hard-resets the guest: the boot counter goes up, earlier output is kept", async () => {
    expect(await driver.rebootInstance(id)).toBe(PowerState.POWER_STATE_RUNNING);
    expect(await waitForBoot(3)).toEqual([1, 2, 3]);
    expect(virsh("domstate", PREFIX + id).trim()).toBe("running");
  }, 120_000);

  it("a forced stop powers off at once", async () => {
    const t0 = Date.now();
    expect(await driver.stopInstance(id, { force: true, timeoutMs: 60_000 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(virsh("domstate", PREFIX + id).trim()).toBe("shut off");
  }, 30_000);

  it("destroyInstance removes domain, overlay and console log, and succeeds again when gone", async () => {
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(ourDomains()).toEqual([]);
    expect(existsSync(join(instancesDir, `${PREFIX}${id}.qcow2`))).toBe(false);
    expect(existsSync(join(instancesDir, `${PREFIX}${id}.console.log`))).toBe(false);
    expect(await driver.list()).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect((await driver.consoleOutput(id)).length).toBe(0);
    await expect(driver.startInstance(id)).rejects.toMatchObject({ kind: "NotFound" });
    expect(await driver.stopInstance(id, { force: false, timeoutMs: 1000 })).toBe(PowerState.POWER_STATE_ABSENT);
  }, 60_000);

  it("createInstance with image files missing on the host fails with InvalidImage and leaves nothing", async () => {
    const other = newId("i");
    const err = await driver.createInstance({ ...spec, instanceId: other, image: { ...spec.image!, kernelPath: "/var/lib/cirrus/images/no-such-ami/vmlinuz" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).kind).toBe("InvalidImage");
    const err2 = await driver.createInstance({ ...spec, instanceId: other, image: { ...spec.image!, rootPath: spec.image!.kernelPath } }).catch((e: unknown) => e);
    expect((err2 as DriverError).kind).toBe("InvalidImage"); // a kernel is not a qcow2 disk
    expect(ourDomains()).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
  }, 30_000);

  it("createInstance takes image files only from below the image directories, symlinks followed, never from the instances directory", async () => {
    const other = newId("i");
    const victim = join(instancesDir, `${PREFIX}${newId("i")}.qcow2`);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", victim, "1G"]);
    const links = mkdtempSync(join(TEST_IMAGE_DIRS[0]!, "cirrus-links-"));
    try {
      symlinkSync(victim, join(links, "rootfs.qcow2"));
      symlinkSync("/etc/shadow", join(links, "vmlinuz"));
      const refused = async (image: agent.ImageSpec, d: LibvirtDriver = driver) => {
        const err = await d.createInstance({ ...spec, instanceId: other, image }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DriverError);
        expect((err as DriverError).kind).toBe("InvalidImage");
        return (err as DriverError).message;
      };
      expect(await refused({ ...spec.image!, rootPath: join(links, "rootfs.qcow2") })).toMatch(/not below an image directory/);
      expect(await refused({ ...spec.image!, kernelPath: join(links, "vmlinuz") })).toMatch(/not below an image directory/);
      expect(await refused({ ...spec.image!, rootPath: victim })).toMatch(/not below an image directory/);
      // Even an operator who makes a parent of the instances directory an image directory cannot hand out disks.
      const wide = new LibvirtDriver({ runner: new LocalRunner(), uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: ["/var/lib/cirrus"], privateDirs: [], log: quietLogger() });
      expect(await refused({ ...spec.image!, rootPath: victim }, wide)).toMatch(/holds instances' disks/);
      await wide.close();
      expect(ourDomains()).toEqual([]);
      expect(statSync(victim).isFile()).toBe(true);
    } finally {
      rmSync(links, { recursive: true, force: true });
      rmSync(victim, { force: true });
    }
  }, 30_000);

  it("a createInstance that fails after making its overlay removes it again", async () => {
    const other = newId("i");
    // i440fx supports at most 255 vCPUs: the overlay is made, then libvirt refuses the domain.
    // libvirt's own words, whether they come over its RPC connection or from virsh.
    await expect(driver.createInstance({ ...spec, instanceId: other, vcpus: 256 })).rejects.toThrow(/Maximum CPUs/);
    expect(ourDomains()).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
  }, 30_000);

  it("a start (reuseRootDisk) never makes a disk, and one that fails keeps the disk it reused", async () => {
    const other = newId("i");
    const overlay = join(instancesDir, `${PREFIX}${other}.qcow2`);
    await expect(driver.createInstance({ ...spec, instanceId: other, reuseRootDisk: true })).rejects.toMatchObject({ kind: "MissingDisk" });
    expect(existsSync(overlay)).toBe(false);
    expect(ourDomains()).toEqual([]);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", spec.image!.rootPath, overlay, "1G"]);
    const before = statSync(overlay).ino;
    // libvirt refuses the domain after the disk was found: only the domain is undone.
    await expect(driver.createInstance({ ...spec, instanceId: other, vcpus: 256, reuseRootDisk: true })).rejects.toThrow(/Maximum CPUs/);
    expect(statSync(overlay).ino).toBe(before);
    expect(ourDomains()).toEqual([]);
    await driver.destroyInstance(other);
  }, 30_000);

  it("quarantineInstance moves the disk and console log aside, deleting nothing; purgeQuarantine deletes them only past the retention", async () => {
    const other = newId("i");
    await driver.createInstance({ ...spec, instanceId: other });
    await driver.quarantineInstance(other);
    expect(ourDomains()).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
    const quarantine = join(instancesDir, "quarantine");
    const moved = readdirSync(quarantine).filter((n) => n.includes(other)).sort();
    expect(moved.map((n) => n.replace(/\.\d+\./, ".<t>."))).toEqual([`${PREFIX}${other}.<t>.console.log`, `${PREFIX}${other}.<t>.qcow2`]);
    expect(statSync(quarantine).mode & 0o777).toBe(0o700);
    // Still a usable disk (it could be restored by hand).
    execFileSync("qemu-img", ["info", "--force-share", join(quarantine, moved[1]!)]);
    await driver.quarantineInstance(other); // nothing left: succeeds
    expect(await driver.purgeQuarantine(3_600_000)).toEqual([]);
    expect(readdirSync(quarantine).filter((n) => n.includes(other))).toHaveLength(2);
    expect((await driver.purgeQuarantine(0)).sort()).toEqual(moved);
    expect(readdirSync(quarantine).filter((n) => n.includes(other))).toEqual([]);
  }, 60_000);
});
