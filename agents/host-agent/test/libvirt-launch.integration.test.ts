// The launch path of the libvirt driver against the real libvirtd, both
// ways it can run: locally (in-process files, the persistent libvirt RPC
// connection) and through commands alone (as over SSH: virsh, stat, rm…).
// Checks what each create ran (its command trace), that a staged overlay
// never touches an existing domain's disk, and that leftovers of an
// interrupted create are replaced.
import { existsSync, rmSync, statSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import type { Logger } from "@cirrus/common";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { LocalRunner } from "../src/runner/local.js";
import type { CommandTiming } from "../src/runner/trace.js";
import type { CommandRunner, RunOptions } from "../src/runner/types.js";
import { LIBVIRT_URI, TEST_IMAGE_DIRS, testAmi, testInstancesDir, virsh } from "./ami-fixture.js";

const { PowerState } = agent;
const PREFIX = `cirruslaunch-${process.pid.toString(16)}-`;

/** A logger keeping what the driver logs at debug ("createInstance timings" with its commands). */
function recordingLogger(): { log: Logger; timings: Array<{ instanceId: string; ok: boolean; commands: CommandTiming[] }> } {
  const timings: Array<{ instanceId: string; ok: boolean; commands: CommandTiming[] }> = [];
  const record = (obj: unknown, msg?: string) => {
    if (msg === "createInstance timings") timings.push(obj as (typeof timings)[number]);
  };
  const log = { isLevelEnabled: () => true, debug: record, info: record, warn: () => undefined, error: () => undefined, child: () => log } as unknown as Logger;
  return { log, timings };
}

const commandsOf = (t: { commands: CommandTiming[] }) => t.commands.map((c) => c.argv.filter((a) => !/^LC_ALL=|^env$/.test(a)).slice(0, 2).join(" "));

describe("LibvirtDriver's launch path", () => {
  let instancesDir: string;
  let spec: (id: string) => agent.InstanceSpec;
  const local = new LocalRunner();
  /** This machine driven through commands only: no in-process files, and a target that is not "local", so no RPC either. */
  const commandsOnly: CommandRunner = { target: "commands-only", run: (argv: string[], opts?: RunOptions) => local.run(argv, opts), close: async () => {} };

  beforeAll(() => {
    const image = testAmi();
    instancesDir = testInstancesDir();
    spec = (instanceId) => ({ instanceId, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image, network: undefined, reuseRootDisk: false, volumes: [], instanceStore: [] });
  }, 600_000);

  afterAll(() => {
    for (const name of virsh("list", "--all", "--name").split("\n").map((l) => l.trim()).filter((n) => n.startsWith(PREFIX))) {
      try {
        virsh("destroy", name);
      } catch {
        // shut off already
      }
      virsh("undefine", name);
    }
    if (instancesDir) rmSync(instancesDir, { recursive: true, force: true });
  });

  it("locally: one RPC connection and no helper processes; leftovers replaced; an existing domain's disk never touched", async () => {
    const { log, timings } = recordingLogger();
    const driver = new LibvirtDriver({ runner: local, uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: TEST_IMAGE_DIRS, privateDirs: [], log });
    const id = newId("i");
    const overlay = join(instancesDir, `${PREFIX}${id}.qcow2`);
    const staged = join(instancesDir, `${PREFIX}${id}.staged.qcow2`);
    // What an interrupted attempt may leave: garbage under both names.
    writeFileSync(overlay, "not a disk");
    writeFileSync(staged, "not a disk either");
    expect(await driver.listArtifacts()).toEqual([id]);

    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(virsh("domstate", PREFIX + id).trim()).toBe("running");
    expect(virsh("dominfo", PREFIX + id)).toMatch(/Persistent:\s+yes/);
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--force-share", "--output=json", overlay], { encoding: "utf8" })) as Record<string, unknown>;
    expect(info["backing-filename"]).toBe(spec(id).image!.rootPath);
    expect(existsSync(staged)).toBe(false);
    const first = timings.at(-1)!;
    expect(first).toMatchObject({ instanceId: id, ok: true });
    // The only processes: the overlay (and qemu-img info the first time an image is seen).
    expect(commandsOf(first).filter((c) => !c.startsWith("libvirt-rpc"))).toEqual(["qemu-img info", "qemu-img create"]);
    expect(commandsOf(first).filter((c) => c.startsWith("libvirt-rpc"))).toEqual(["libvirt-rpc lookup", "libvirt-rpc define", "libvirt-rpc start"]);

    // Running: nothing changes, the staged overlay made meanwhile is removed again, the disk is the same file.
    const disk = statSync(overlay);
    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(statSync(overlay)).toMatchObject({ ino: disk.ino, mtimeMs: disk.mtimeMs });
    expect(existsSync(staged)).toBe(false);
    // The image is known now (no qemu-img info); the staged overlay was made while the state was read.
    expect(commandsOf(timings.at(-1)!).sort()).toEqual(["libvirt-rpc get-state", "libvirt-rpc lookup", "qemu-img create"]);

    // Shut off: started again from the same disk.
    expect(await driver.stopInstance(id, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(statSync(overlay).ino).toBe(disk.ino);
    expect(existsSync(staged)).toBe(false);

    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await driver.listArtifacts()).toEqual([]);
    await driver.close();
  }, 120_000);

  it("through commands alone (as over SSH): the same results, with virsh defining and starting in one process", async () => {
    const { log, timings } = recordingLogger();
    const driver = new LibvirtDriver({ runner: commandsOnly, uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: TEST_IMAGE_DIRS, privateDirs: [], log });
    const id = newId("i");
    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(virsh("domstate", PREFIX + id).trim()).toBe("running");
    expect(virsh("dominfo", PREFIX + id)).toMatch(/Persistent:\s+yes/);
    expect(await driver.list()).toEqual([{ instanceId: id, powerState: PowerState.POWER_STATE_RUNNING }]);
    const cmds = commandsOf(timings.at(-1)!);
    expect(cmds).not.toContain("libvirt-rpc lookup");
    expect(cmds).toEqual(expect.arrayContaining(["virsh -c", "stat -L", "qemu-img create", "mv -f", "rm -f", "mktemp --suffix=.xml", "tee --"]));
    const script = timings.at(-1)!.commands.find((c) => c.argv.some((a) => a.includes("'define'")));
    expect(script?.argv.at(-1)).toMatch(/^'define' '--' '\/tmp\/cirrus-domain\.\w+\.xml' ; 'start' '--' 'cirruslaunch-/);
    expect(await driver.createInstance(spec(id))).toBe(PowerState.POWER_STATE_RUNNING);
    expect(existsSync(join(instancesDir, `${PREFIX}${id}.staged.qcow2`))).toBe(false);
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await driver.list()).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
  }, 120_000);

  it("a create whose start fails removes the domain, overlay and staged overlay, either way", async () => {
    for (const runner of [local, commandsOnly]) {
      const driver = new LibvirtDriver({ runner, uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: PREFIX, instancesDir, imageDirs: TEST_IMAGE_DIRS, privateDirs: [], log: recordingLogger().log });
      const id = newId("i");
      // A kernel that is not a regular file: InvalidImage, nothing left.
      const bad = { ...spec(id), image: { ...spec(id).image!, kernelPath: instancesDir } };
      expect(await driver.createInstance(bad).catch((e: unknown) => e)).toMatchObject({ kind: "InvalidImage" });
      expect(await driver.listArtifacts()).toEqual([]);
      // Defined, then refused by libvirt (i440fx has at most 255 vCPUs): the overlay was made, and is removed.
      const vcpus = await driver.createInstance({ ...spec(id), vcpus: 256 }).catch((e: unknown) => e);
      expect(String(vcpus)).toMatch(/Maximum CPUs/);
      expect(virsh("list", "--all", "--name")).not.toContain(PREFIX + id);
      expect(await driver.listArtifacts()).toEqual([]);
    }
  }, 60_000);
});
