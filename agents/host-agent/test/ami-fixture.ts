// The test AMI (deploy/build-test-ami.sh) for the tests that boot real
// guests under TCG, and where their disks may live.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { agent } from "@cirrus/proto";

export const LIBVIRT_URI = "qemu:///system";
const REPO = new URL("../../../", import.meta.url).pathname;
/** CIRRUS_TEST_AMI_DIR: another directory, to try changes to the guest without touching the shared image. */
const AMI_DIR = process.env.CIRRUS_TEST_AMI_DIR ?? "/var/lib/cirrus/images/test-ami";

/** The image directories a driver under test takes the test AMI from (the directory holding the test AMI's). */
export const TEST_IMAGE_DIRS = [dirname(AMI_DIR)];

export function virsh(...args: string[]): string {
  return execFileSync("virsh", ["-c", LIBVIRT_URI, ...args], { encoding: "utf8" });
}

/** The domains whose names start with `prefix` (a test's own). */
export function domainsNamed(prefix: string): string[] {
  return virsh("list", "--all", "--name").split("\n").map((l) => l.trim()).filter((n) => n.startsWith(prefix));
}

/** Destroys and undefines a test's own domains (by name prefix). */
export function removeDomainsNamed(prefix: string): void {
  for (const name of domainsNamed(prefix)) {
    try {
      virsh("destroy", name);
    } catch {
      // already shut off
    }
    virsh("undefine", name);
  }
}

/**
 * Checks libvirtd answers, builds the test AMI unless it is already built
 * (the script returns at once then), and returns the image spec for it.
 */
export function testAmi(): agent.ImageSpec {
  try {
    virsh("version");
  } catch (err) {
    throw new Error(`libvirtd is not reachable at ${LIBVIRT_URI} (start it with: virtlogd -d; libvirtd -d): ${String(err)}`);
  }
  execFileSync("bash", [join(REPO, "deploy/build-test-ami.sh"), AMI_DIR], { stdio: "inherit" });
  // Resolved: the shared test-ami is a symlink to the current build (deploy/prepare-host.sh).
  const dir = realpathSync(AMI_DIR);
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Record<string, string>;
  return {
    imageId: "ami-0000000000000test",
    rootPath: join(dir, manifest.root!),
    kernelPath: join(dir, manifest.kernel!),
    ramdiskPath: join(dir, manifest.ramdisk!),
    kernelCmdline: manifest.cmdline!,
  };
}

/**
 * A fresh instances directory under /var/lib/cirrus, not the work tree: QEMU
 * runs as libvirt-qemu and must be able to traverse every directory down to
 * the disk and log.
 */
export function testInstancesDir(): string {
  mkdirSync("/var/lib/cirrus", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync("/var/lib/cirrus/test-instances-");
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * A copy of the test AMI whose /usr/lib/cirrus/network (which the guest's
 * init starts in the background with the instance id) is `program`, a
 * shell script: a guest without a NIC that runs a test's own program.
 * Written into a copy of the root filesystem with debugfs, in `work`
 * (which QEMU must be able to traverse); the root disk is in
 * `<work>/images`, to be added to the driver's image directories.
 */
export function testAmiRunning(program: string, work: string): { image: agent.ImageSpec; imageDir: string } {
  const ami = testAmi();
  const imageDir = join(work, "images");
  mkdirSync(imageDir, { mode: 0o755 });
  const raw = join(work, "root.raw");
  const script = join(work, "guest-program");
  writeFileSync(script, program, { mode: 0o755 });
  execFileSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", ami.rootPath, raw]);
  const cmds = join(work, "debugfs.cmds");
  writeFileSync(cmds, `cd /usr/lib/cirrus\nrm network\nwrite ${script} network\nsif network mode 0100755\n`);
  execFileSync("debugfs", ["-w", "-f", cmds, raw], { stdio: "pipe" });
  const root = join(imageDir, "rootfs.qcow2");
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, root]);
  rmSync(raw);
  return { image: { ...ami, imageId: "ami-000000000000guest", rootPath: root }, imageDir };
}
