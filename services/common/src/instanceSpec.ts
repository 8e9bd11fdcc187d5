import type { agent } from "@cirrus/proto";

/** The columns of an instance joined with its image that an agent needs. */
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
}

/** What a host agent needs to build an instance's domain. */
export function instanceSpecOf(r: InstanceSpecRow): agent.InstanceSpec {
  return {
    instanceId: r.id, vcpus: r.vcpus, memoryMib: r.memory_mib, rootDiskGib: r.disk_gib,
    image: { imageId: r.image_id, rootPath: r.location, kernelPath: r.kernel_location, ramdiskPath: r.ramdisk_location, kernelCmdline: r.kernel_cmdline },
    network: undefined,
  };
}
