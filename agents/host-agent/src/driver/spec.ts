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
  /** Its instance-store disks, distinct in name and target, at no volume's target. */
  instanceStore: ValidInstanceStoreDisk[];
}

/** An instance-store disk with every field checked. */
export interface ValidInstanceStoreDisk {
  /** Its serial, and part of its file's name. */
  name: InstanceStoreName;
  /** vdx…vdz. */
  target: string;
  sizeGib: number;
}

/** What an instance-store disk may be called: EC2's virtual names. The names are also file names (the driver's), so the list is closed. */
export const INSTANCE_STORE_NAMES = Array.from({ length: 10 }, (_, n) => `ephemeral${n}` as const);
export type InstanceStoreName = (typeof INSTANCE_STORE_NAMES)[number];
/** The targets instance-store disks take (the control plane hands volumes vdb…vdw). */
const INSTANCE_STORE_TARGETS = ["vdx", "vdy", "vdz"];
/** 16 TiB: beyond EC2's largest instance-store disk; the bound keeps a garbled size from becoming a file of any length. */
const MAX_INSTANCE_STORE_GIB = 16 * 1024;

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
  const volumes = validateAttachments(spec.volumes ?? []);
  return {
    instanceId,
    vcpus,
    memoryMib,
    rootDiskGib,
    image: { imageId: image.imageId, rootPath, kernelPath, ramdiskPath, kernelCmdline: image.kernelCmdline || undefined },
    network: spec.network ? validateInterface(spec.network) : undefined,
    reuseRootDisk: spec.reuseRootDisk === true,
    volumes,
    instanceStore: validateInstanceStore(spec.instanceStore ?? [], volumes),
  };
}

function validateAttachments(list: readonly agent.VolumeAttachment[]): ValidAttachment[] {
  const volumes = list.map(validateAttachment);
  checkDistinct("volumes", volumes, ["volumeId", "target"]);
  return volumes;
}

/** At most one disk per instance-store target, each named ephemeral0…9 (distinct), 1…16384 GiB, at no target of `volumes`. */
function validateInstanceStore(list: readonly agent.InstanceStoreDisk[], volumes: readonly ValidAttachment[]): ValidInstanceStoreDisk[] {
  if (list.length > INSTANCE_STORE_TARGETS.length) throw new DriverError("InvalidSpec", `instanceStore: at most ${INSTANCE_STORE_TARGETS.length} disks, got ${list.length}`);
  const disks = list.map((d) => {
    if (!(INSTANCE_STORE_NAMES as readonly string[]).includes(d.name)) throw new DriverError("InvalidSpec", `an instance-store disk's name is ephemeral0…ephemeral9, not ${JSON.stringify(d.name.slice(0, 16))}`);
    if (!INSTANCE_STORE_TARGETS.includes(d.target)) throw new DriverError("InvalidSpec", `an instance-store disk's target is vdx…vdz, not ${JSON.stringify(d.target.slice(0, 16))}`);
    return { name: d.name as InstanceStoreName, target: d.target, sizeGib: checkInt(`instanceStore ${d.name} sizeGib`, d.sizeGib, 1, MAX_INSTANCE_STORE_GIB) };
  });
  checkDistinct("instanceStore", disks, ["name", "target"]);
  const shared = volumes.find((v) => disks.some((d) => d.target === v.target));
  if (shared) throw new DriverError("InvalidSpec", `target ${shared.target} is both volume ${shared.volumeId}'s and an instance-store disk's`);
  return disks;
}

/** Throws DriverError("InvalidSpec") when two of `items` have the same value of one of `keys`. */
function checkDistinct<T extends Record<K, string>, K extends string>(what: string, items: readonly T[], keys: readonly K[]): void {
  for (const key of keys) {
    const seen = new Set<string>();
    for (const item of items) {
      if (seen.has(item[key])) throw new DriverError("InvalidSpec", `${what}: ${key} ${item[key]} appears twice`);
      seen.add(item[key]);
    }
  }
}
