// What an agent needs to build an instance's VM: the instance joined with its
// image and subnet, mapped to agent.InstanceSpec.
import { gatewayOf, macFor, parseExactCidr } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import { volumeAttachmentOf, type AttachedVolumeRow } from "../volumes/lifecycle.js";

/** The columns of an instance joined with its image and subnet that an agent needs. */
export interface InstanceSpecRow {
  id: string;
  vcpus: number;
  memory_mib: number;
  disk_gib: number;
  image_id: string;
  location: string;
  kernel_location: string;
  ramdisk_location: string;
  kernel_cmdline: string;
  subnet_id: string | null;
  /** e.g. 10.0.1.0/24 */
  subnet_cidr: string | null;
  /** host(private_ip): no mask. */
  private_ip: string | null;
  /** The volumes attaching or attached, as volumeAttachmentOf needs them. */
  volumes: AttachedVolumeRow[];
  /** Its instance-store disks (migration 015), counted in disk_gib. */
  instance_store: agent.InstanceStoreDisk[];
}

/**
 * SQL selecting what InstanceSpecRow needs, plus `extraColumns`; callers add
 * joins and WHERE. Aliases: i (instances), m (images), s (subnets).
 */
export function instanceSpecSql(extraColumns = ""): string {
  return `SELECT i.id, i.vcpus, i.memory_mib, i.disk_gib, i.instance_store, i.image_id, i.subnet_id, host(i.private_ip) AS private_ip,
      m.location, m.kernel_location, m.ramdisk_location, m.kernel_cmdline, s.cidr::text AS subnet_cidr,
      (SELECT coalesce(json_agg(json_build_object('id', v.id, 'target', v.target, 'volume_type', v.volume_type, 'size_gib', v.size_gib, 'iops', v.iops, 'throughput', v.throughput, 'snapshot_id', v.snapshot_id)
              ORDER BY v.target), '[]') FROM volumes v WHERE v.instance_id = i.id AND v.attachment_state IN ('attaching', 'attached')) AS volumes${extraColumns ? `, ${extraColumns}` : ""}
    FROM instances i JOIN images m ON m.id = i.image_id LEFT JOIN subnets s ON s.id = i.subnet_id`;
}

export function instanceSpecOf(r: InstanceSpecRow): agent.InstanceSpec {
  const subnet = r.subnet_cidr ? parseExactCidr(r.subnet_cidr) : undefined;
  return {
    instanceId: r.id, vcpus: r.vcpus, memoryMib: r.memory_mib, rootDiskGib: r.disk_gib - r.instance_store.reduce((n, d) => n + d.sizeGib, 0),
    image: { imageId: r.image_id, rootPath: r.location, kernelPath: r.kernel_location, ramdiskPath: r.ramdisk_location, kernelCmdline: r.kernel_cmdline },
    network: r.private_ip && subnet && r.subnet_id
      ? { subnetId: r.subnet_id, subnetCidr: r.subnet_cidr!, gatewayIp: gatewayOf(subnet), privateIp: r.private_ip, macAddress: macFor(r.private_ip) }
      : undefined,
    // A launch's spec; the start step says otherwise (instances/lifecycle.ts).
    reuseRootDisk: false,
    volumes: r.volumes.map(volumeAttachmentOf),
    instanceStore: r.instance_store,
  };
}
