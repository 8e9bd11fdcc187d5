// Validation of what the control plane asks for, before anything touches the
// host: ids and paths are checked against allowlists even though they only
// ever travel as argv elements or escaped XML (defence in depth).
import { isId, isPlainAbsolutePath } from "@cirrus/common";
import { validateInterface, type ValidInterface } from "../network/state.js";
import type { agent } from "@cirrus/proto";
import { DriverError, type InstanceSpec, type VolumeModification } from "./types.js";

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
  /** Its EBS volumes, distinct in id and target. */
  volumes: ValidAttachment[];
}

/** A volume attachment with every field checked. */
export interface ValidAttachment {
  volumeId: string;
  /** vdb…vdz. */
  target: string;
  qos: agent.VolumeQos;
}

const VOLUME_TARGET = /^vd[b-z]$/;
/** An attachment without QoS: no limits. */
const NO_QOS: agent.VolumeQos = { totalIopsSec: 0, totalBytesSec: 0, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 };

/** An absolute path of plain segments (no ".", "..", control or shell-special characters), and not "/" itself. */
export function isSafePath(path: string): boolean {
  return path !== "/" && isPlainAbsolutePath(path);
}

/** Throws DriverError("InvalidSpec") unless `id` is an EBS volume id. */
export function checkVolumeId(id: string): string {
  if (!isId("vol", id)) throw new DriverError("InvalidSpec", `not a volume id: ${JSON.stringify(id.slice(0, 64))}`);
  return id;
}

/**
 * The attachment with its volume id, target (vdb…vdz) and QoS (validateQos)
 * checked; throws DriverError("InvalidSpec") naming the bad field.
 */
export function validateAttachment(a: agent.VolumeAttachment | undefined): ValidAttachment {
  if (!a) throw new DriverError("InvalidSpec", "attachment is missing");
  const volumeId = checkVolumeId(a.volumeId);
  if (!VOLUME_TARGET.test(a.target)) throw new DriverError("InvalidSpec", `a volume's target is vdb…vdz, not ${JSON.stringify(a.target.slice(0, 16))}`);
  return { volumeId, target: a.target, qos: validateQos(a.qos) };
}

/**
 * A volume's QoS with every limit present and checked (a whole number
 * ≥ 0, a burst length only with a burst); absent: no limits. Throws
 * DriverError("InvalidSpec") naming the bad field.
 */
export function validateQos(given: agent.VolumeQos | undefined): agent.VolumeQos {
  const qos = { ...NO_QOS, ...given };
  // libvirt takes unsigned 64-bit values; a safe integer is more than any disk needs.
  for (const [field, value] of Object.entries(qos)) checkInt(`qos.${field}`, value, 0, Number.MAX_SAFE_INTEGER);
  if (qos.totalIopsSecMaxLength > 0 && qos.totalIopsSecMax === 0) throw new DriverError("InvalidSpec", "qos.totalIopsSecMaxLength needs qos.totalIopsSecMax");
  return qos;
}

/** The modification with its volume id, size (a whole number of bytes, at least 1) and QoS (validateQos) checked; throws DriverError("InvalidSpec") naming the bad field. */
export function validateModification(mod: VolumeModification): VolumeModification {
  return { volumeId: checkVolumeId(mod.volumeId), sizeBytes: checkInt("sizeBytes", mod.sizeBytes, 1, Number.MAX_SAFE_INTEGER), qos: validateQos(mod.qos) };
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
    volumes: validateAttachments(spec.volumes ?? []),
  };
}

function validateAttachments(list: readonly agent.VolumeAttachment[]): ValidAttachment[] {
  const volumes = list.map(validateAttachment);
  for (const key of ["volumeId", "target"] as const) {
    const seen = new Set<string>();
    for (const v of volumes) {
      if (seen.has(v[key])) throw new DriverError("InvalidSpec", `volumes: ${key} ${v[key]} appears twice`);
      seen.add(v[key]);
    }
  }
  return volumes;
}
