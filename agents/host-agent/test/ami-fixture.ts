// The test AMI (deploy/build-test-ami.sh) for the tests that boot real
// guests under TCG, and where their disks may live.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync } from "node:fs";
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
