// Validation of what the control plane asks for, before anything touches the
// host: ids and paths are checked against allowlists even though they only
// ever travel as argv elements or escaped XML (defence in depth).
import { isId, isPlainAbsolutePath } from "@cirrus/common";
import { validateInterface, type ValidInterface } from "../network/state.js";
import { DriverError, type InstanceSpec } from "./types.js";

/** Printable ASCII only: a kernel command line has no business carrying anything else. */
const SAFE_CMDLINE = /^[\x20-\x7e]{0,2048}$/;

const LIMITS = { maxVcpus: 256, minMemoryMib: 64, maxMemoryMib: 4 * 1024 * 1024, maxRootDiskGib: 64 * 1024 } as const;

export interface ValidSpec {
  instanceId: string;
  vcpus: number;
  memoryMib: number;
  rootDiskGib: number;
  image: { imageId: string; rootPath: string; kernelPath?: string; ramdiskPath?: string; kernelCmdline?: string };
  /** Absent: the instance has no NIC. */
  network?: ValidInterface;
  /** The instance has run: its existing disk is used, never made anew (InstanceSpec.reuse_root_disk). */
  reuseRootDisk: boolean;
}

/** An absolute path of plain segments (no ".", "..", control or shell-special characters), and not "/" itself. */
export function isSafePath(path: string): boolean {
  return path !== "/" && isPlainAbsolutePath(path);
}

/** Throws DriverError("InvalidSpec") unless `id` is an EC2 instance id. */
export function checkInstanceId(id: string): string {
  if (!isId("i", id)) throw new DriverError("InvalidSpec", `not an instance id: ${JSON.stringify(id.slice(0, 64))}`);
  return id;
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new DriverError("InvalidSpec", `${name} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

function checkPath(name: string, path: string): string {
  if (!isSafePath(path)) throw new DriverError("InvalidSpec", `${name} is not an allowed absolute path: ${JSON.stringify(path.slice(0, 200))}`);
  return path;
}

/**
 * The spec with every field checked and empty optional strings dropped.
 * Throws DriverError("InvalidSpec") naming the first bad field.
 */
export function validateSpec(spec: InstanceSpec): ValidSpec {
  const instanceId = checkInstanceId(spec.instanceId);
  const vcpus = checkInt("vcpus", spec.vcpus, 1, LIMITS.maxVcpus);
  const memoryMib = checkInt("memoryMib", spec.memoryMib, LIMITS.minMemoryMib, LIMITS.maxMemoryMib);
  const rootDiskGib = checkInt("rootDiskGib", spec.rootDiskGib, 1, LIMITS.maxRootDiskGib);
  const image = spec.image;
  if (!image) throw new DriverError("InvalidSpec", "image is missing");
  if (!image.rootPath) throw new DriverError("InvalidSpec", "image.rootPath is missing");
  const rootPath = checkPath("image.rootPath", image.rootPath);
  const kernelPath = image.kernelPath ? checkPath("image.kernelPath", image.kernelPath) : undefined;
  const ramdiskPath = image.ramdiskPath ? checkPath("image.ramdiskPath", image.ramdiskPath) : undefined;
  if (!kernelPath && (ramdiskPath || image.kernelCmdline)) throw new DriverError("InvalidSpec", "image.ramdiskPath and image.kernelCmdline need image.kernelPath");
  if (!SAFE_CMDLINE.test(image.kernelCmdline)) throw new DriverError("InvalidSpec", "image.kernelCmdline must be at most 2048 printable ASCII characters");
  return {
    instanceId,
    vcpus,
    memoryMib,
    rootDiskGib,
    image: { imageId: image.imageId, rootPath, kernelPath, ramdiskPath, kernelCmdline: image.kernelCmdline || undefined },
    network: spec.network ? validateInterface(spec.network) : undefined,
    reuseRootDisk: spec.reuseRootDisk === true,
  };
}
