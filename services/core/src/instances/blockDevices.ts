// RunInstances' BlockDeviceMappings: the root device's size, and volumes
// made for each instance and attached at launch. Every mapping is checked
// before anything is written, as CreateVolume and AttachVolume check theirs;
// the volumes are inserted in the launch's transaction, already attaching to
// their instance, and the launch step has its host make them before it
// defines the domain with them (lifecycle.ts), so the guest boots with them.
import { newId } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import type { Queryable } from "../db/tx.js";
import { Ec2Error } from "../errors.js";
import { instanceStoreOf, type InstanceTypeSpec } from "../instanceTypes.js";
import { truncate } from "../validate.js";
import type { VolumeRow } from "../volumes/model.js";
import { holdSnapshots, sizeFromSnapshot } from "../volumes/sources.js";
import { ATTACHABLE_DEVICE, VOLUME_TARGETS } from "../volumes/targets.js";
import { volumeQuality, type VolumeQuality } from "../volumes/types.js";
import { ROOT_DEVICE_NAME } from "./model.js";

/** A volume every instance of the launch gets. */
export interface LaunchVolume {
  device: string;
  target: string;
  quality: VolumeQuality;
  snapshotId: string;
  deleteOnTermination: boolean;
}

export interface LaunchBlockDevices {
  rootGib: number;
  volumes: LaunchVolume[];
}

const MAX_ROOT_GIB = 16_384;

/** The image's root device under any of the names EC2 users give it. */
function isRootDevice(device: string, imageRootDevice: string): boolean {
  return device === imageRootDevice || device === ROOT_DEVICE_NAME;
}

function rootSize(m: compute.BlockDeviceMapping, imageGib: number): number {
  const { VolumeSize, DeleteOnTermination, Iops, SnapshotId, VolumeType, Throughput, Encrypted } = m.Ebs ?? {};
  // The root disk is the instance's own copy-on-write file on its host, not an EBS volume yet.
  if (Iops !== undefined || SnapshotId || VolumeType || Throughput !== undefined || Encrypted || DeleteOnTermination === false) {
    throw new Ec2Error("Unsupported", "The root device takes only VolumeSize in Cirrus: it is not an EBS volume yet (its type, IOPS, snapshot and DeleteOnTermination cannot be set).");
  }
  const size = VolumeSize ?? imageGib;
  if (!Number.isInteger(size) || size < imageGib || size > MAX_ROOT_GIB) {
    throw new Ec2Error("InvalidParameterValue", `Volume of ${size}GiB is smaller than the image's root device (${imageGib}GiB) or larger than ${MAX_ROOT_GIB}GiB.`);
  }
  return size;
}

/**
 * The launch's block devices, checked: at most one mapping per device, the
 * root's size at least the image's, instance store only as the type has
 * it, NoDevice refused (Unsupported: not yet), each volume's type, size, IOPS and throughput as
 * CreateVolume checks them, a snapshot the caller's (or shared with it) and completed (its
 * size the default). Writes nothing.
 */
export async function launchBlockDevices(ctx: RequestContext, mappings: readonly compute.BlockDeviceMapping[], image: { root_size_gib: number; root_device_name: string },
  type: InstanceTypeSpec): Promise<LaunchBlockDevices> {
  const ephemeral = new Set(instanceStoreOf(type).map((d) => d.name));
  let rootGib = image.root_size_gib;
  const volumes: LaunchVolume[] = [];
  const seen = new Set<string>();
  for (const m of mappings) {
    if (!m.DeviceName) throw new Ec2Error("MissingParameter", "The request must contain the parameter BlockDeviceMapping.DeviceName");
    if (seen.has(m.DeviceName)) throw new Ec2Error("InvalidBlockDeviceMapping", `The device '${truncate(m.DeviceName)}' is used in more than one block device mapping.`);
    seen.add(m.DeviceName);
    if (m.VirtualName) {
      // The type's instance store is there whether or not it is mapped, as on EC2's Nitro types.
      if (ephemeral.has(m.VirtualName)) continue;
      throw new Ec2Error("InvalidBlockDeviceMapping", `The instance type ${type.name} has no instance store volume ${truncate(m.VirtualName)}.`);
    }
    if (m.NoDevice !== "") throw new Ec2Error("Unsupported", "NoDevice is not supported by Cirrus yet.");
    if (isRootDevice(m.DeviceName, image.root_device_name)) {
      rootGib = rootSize(m, image.root_size_gib);
      continue;
    }
    if (!ATTACHABLE_DEVICE.test(m.DeviceName)) throw new Ec2Error("InvalidBlockDeviceMapping", `Invalid device name ${truncate(m.DeviceName)}`);
    const ebs = m.Ebs;
    if (!ebs) throw new Ec2Error("InvalidBlockDeviceMapping", `The block device mapping for ${m.DeviceName} needs Ebs.`);
    if (ebs.Encrypted) throw new Ec2Error("Unsupported", "Encrypted volumes are not supported by Cirrus yet.");
    const size = ebs.SnapshotId ? await sizeFromSnapshot(ctx, ebs.SnapshotId, ebs.VolumeSize) : ebs.VolumeSize;
    if (size === undefined) throw new Ec2Error("MissingParameter", `The block device mapping for ${m.DeviceName} needs VolumeSize or SnapshotId.`);
    const target = VOLUME_TARGETS[volumes.length];
    if (!target) throw new Ec2Error("AttachmentLimitExceeded", `An instance can have ${VOLUME_TARGETS.length} volumes attached at most.`);
    volumes.push({ device: m.DeviceName, target, quality: volumeQuality(ebs.VolumeType, size, ebs.Iops, ebs.Throughput), snapshotId: ebs.SnapshotId, deleteOnTermination: ebs.DeleteOnTermination ?? true });
  }
  return { rootGib, volumes };
}

/**
 * Inserts each launch volume for each instance, attaching (no task: the
 * launch step makes and attaches them), after checking under a share lock
 * that their snapshots are still there. Returns the rows.
 */
export async function insertLaunchVolumes(db: Queryable, ownerId: string, zone: string, instanceIds: readonly string[], volumes: readonly LaunchVolume[]): Promise<VolumeRow[]> {
  if (volumes.length === 0 || instanceIds.length === 0) return [];
  await holdSnapshots(db, volumes.map((v) => v.snapshotId));
  const rows = instanceIds.flatMap((instanceId) => volumes.map((v) => ({ id: newId("vol"), instanceId, v })));
  const { rows: inserted } = await db.query<VolumeRow>(
    `INSERT INTO volumes (id, owner_id, availability_zone, size_gib, volume_type, iops, throughput, snapshot_id, state,
                          instance_id, device, target, attachment_state, attach_time, delete_on_termination)
     SELECT v.id, $2, $3, v.size, v.type, v.iops, v.throughput, v.snapshot, 'in-use', v.instance, v.device, v.target, 'attaching', now(), v.dot
       FROM unnest($1::text[], $4::int[], $5::text[], $6::int[], $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[])
            AS v(id, size, type, iops, throughput, snapshot, instance, device, target, dot)
     RETURNING *`,
    [rows.map((r) => r.id), ownerId, zone, rows.map((r) => r.v.quality.sizeGiB), rows.map((r) => r.v.quality.type), rows.map((r) => r.v.quality.iops ?? null),
      rows.map((r) => r.v.quality.throughput ?? null), rows.map((r) => r.v.snapshotId), rows.map((r) => r.instanceId), rows.map((r) => r.v.device),
      rows.map((r) => r.v.target), rows.map((r) => r.v.deleteOnTermination)],
  );
  return inserted;
}
