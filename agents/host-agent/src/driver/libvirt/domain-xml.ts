// Domain XML from a typed description. XMLBuilder escapes every text node and
// attribute value, so no field can inject elements or attributes; the values
// are also validated upstream (spec.ts).
import { createHash } from "node:crypto";
import { XMLBuilder } from "fast-xml-parser";
import type { agent } from "@cirrus/proto";

export interface DomainDefinition {
  /** libvirt domain name: the agent's prefix + instance id. */
  name: string;
  uuid: string;
  hypervisor: "kvm" | "qemu";
  vcpus: number;
  memoryMib: number;
  /** SMBIOS type 1 serial: how the guest learns its instance id. */
  serial: string;
  /** Direct kernel boot; absent → boot the root disk's own bootloader. */
  kernel?: { path: string; initrdPath?: string; cmdline?: string };
  /** qcow2 overlay attached as virtio vda. */
  rootDiskPath: string;
  /** File that receives the serial console, appended across boots. */
  consoleLogPath: string;
  /** A virtio NIC on a bridge; libvirt creates the tap device and adds it to the bridge. */
  nic?: InterfaceDefinition;
  /** EBS volumes, as virtio disks after the root disk. */
  volumes?: readonly VolumeDiskDefinition[];
  /** Instance-store disks, as virtio disks after the volumes. */
  instanceStore?: readonly InstanceStoreDiskDefinition[];
}

/** An instance-store disk as a virtio disk of a domain. */
export interface InstanceStoreDiskDefinition {
  /** ephemeral0…: its serial, so the guest finds it in /dev/disk/by-id. */
  name: string;
  /** vdx…vdz. */
  target: string;
  /** The raw file in the instances directory. */
  path: string;
}

/** An EBS volume as a virtio disk of a domain. */
export interface VolumeDiskDefinition {
  volumeId: string;
  /** vdb…vdz. */
  target: string;
  /** The volume's qcow2 file. */
  path: string;
  /** libvirt <iotune> limits; 0 or absent: no limit. */
  qos?: agent.VolumeQos;
}

export interface InterfaceDefinition {
  bridge: string;
  /** A fixed tap name: the firewall's physdev rules name it before the domain starts. */
  tap: string;
  mac: string;
  /** Where the NIC sits on the guest's PCI bus (libvirt's address attributes); undefined: libvirt picks. */
  pciAddress?: Readonly<Record<string, string>>;
}

/**
 * A stable UUID for a domain name (SHA-256 based, RFC 9562 version 8), so
 * redefining the same instance yields the same domain identity.
 */
export function domainUuid(name: string): string {
  const b = createHash("sha256").update(`cirrus-domain:${name}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: "@_", format: true, suppressEmptyNode: true });

export function buildDomainXml(d: DomainDefinition): string {
  const os: Record<string, unknown> = { type: { "@_arch": "x86_64", "#text": "hvm" } };
  if (d.kernel) {
    os.kernel = d.kernel.path;
    if (d.kernel.initrdPath) os.initrd = d.kernel.initrdPath;
    if (d.kernel.cmdline) os.cmdline = d.kernel.cmdline;
  } else {
    os.boot = { "@_dev": "hd" };
  }
  os.smbios = { "@_mode": "sysinfo" };

  const domain = {
    "@_type": d.hypervisor,
    name: d.name,
    uuid: d.uuid,
    memory: { "@_unit": "MiB", "#text": String(d.memoryMib) },
    vcpu: String(d.vcpus),
    sysinfo: {
      "@_type": "smbios",
      system: {
        entry: [
          { "@_name": "manufacturer", "#text": "Cirrus" },
          { "@_name": "product", "#text": "Cirrus Compute" },
          { "@_name": "serial", "#text": d.serial },
          { "@_name": "uuid", "#text": d.uuid },
        ],
      },
    },
    os,
    // ACPI: `virsh shutdown` is delivered as the ACPI power button.
    features: { acpi: "", apic: "" },
    clock: { "@_offset": "utc" },
    // A guest powering itself off stops the instance (EC2's "stop" on
    // shutdown); a crash is reported as shut off rather than looping.
    on_poweroff: "destroy",
    on_reboot: "restart",
    on_crash: "destroy",
    devices: {
      disk: [
        {
          "@_type": "file",
          "@_device": "disk",
          driver: { "@_name": "qemu", "@_type": "qcow2" },
          source: { "@_file": d.rootDiskPath },
          target: { "@_dev": "vda", "@_bus": "virtio" },
        },
        ...(d.volumes ?? []).map(volumeDiskElement),
        ...(d.instanceStore ?? []).map(instanceStoreDiskElement),
      ],
      ...(d.nic && { interface: interfaceElement(d.nic) }),
      controller: { "@_type": "usb", "@_model": "none" },
      // append='on': a reboot or stop/start must keep the earlier boots' output.
      serial: { "@_type": "file", source: { "@_path": d.consoleLogPath, "@_append": "on" }, target: { "@_port": "0" } },
      console: { "@_type": "file", source: { "@_path": d.consoleLogPath, "@_append": "on" }, target: { "@_type": "serial", "@_port": "0" } },
      memballoon: { "@_model": "none" },
    },
  };
  return builder.build({ domain }) as string;
}

function interfaceElement(nic: InterfaceDefinition): Record<string, unknown> {
  const address = nic.pciAddress && Object.fromEntries(Object.entries(nic.pciAddress).map(([k, v]) => [`@_${k}`, v]));
  return {
    "@_type": "bridge",
    source: { "@_bridge": nic.bridge },
    target: { "@_dev": nic.tap },
    mac: { "@_address": nic.mac },
    model: { "@_type": "virtio" },
    ...(address && { address: { ...address, "@_type": "pci" } }),
  };
}

/**
 * The serial a guest sees for a volume: its id without the hyphen, as EC2's
 * NVMe volumes report it (`vol0123456789abcdef0`, the 20 characters
 * virtio-blk allows), so `/dev/disk/by-id` finds a volume by its id.
 */
export function volumeSerial(volumeId: string): string {
  return volumeId.replace("-", "");
}

/** The <iotune> elements a volume's QoS sets (also `virsh blkdeviotune`'s options, with hyphens), and the VolumeQos field of each. */
export const IOTUNE_FIELDS = [
  ["total_iops_sec", "totalIopsSec"],
  ["total_bytes_sec", "totalBytesSec"],
  ["total_iops_sec_max", "totalIopsSecMax"],
  ["total_iops_sec_max_length", "totalIopsSecMaxLength"],
] as const;

/**
 * A virtio disk backed by a host file, cache='none' (O_DIRECT): for a
 * volume, a write the guest has flushed is on the store, not in this
 * host's page cache, so another host of the zone reads it after a detach;
 * for scratch, what the guest caches itself is not cached again in host
 * memory, which belongs to guests.
 */
function fileDiskElement(format: "qcow2" | "raw", path: string, target: string, serial: string): Record<string, unknown> {
  return {
    "@_type": "file",
    "@_device": "disk",
    driver: { "@_name": "qemu", "@_type": format, "@_cache": "none" },
    source: { "@_file": path },
    target: { "@_dev": target, "@_bus": "virtio" },
    serial,
  };
}

function volumeDiskElement(v: VolumeDiskDefinition): Record<string, unknown> {
  const limits = IOTUNE_FIELDS.filter(([, field]) => (v.qos?.[field] ?? 0) > 0).map(([element, field]) => [element, String(v.qos![field])]);
  return { ...fileDiskElement("qcow2", v.path, v.target, volumeSerial(v.volumeId)), ...(limits.length > 0 && { iotune: Object.fromEntries(limits) }) };
}

/** raw: a plain sparse file, which a wipe replaces whole. */
function instanceStoreDiskElement(disk: InstanceStoreDiskDefinition): Record<string, unknown> {
  return fileDiskElement("raw", disk.path, disk.target, disk.name);
}

/** The <disk> element of a volume alone, for `virsh attach-device`. */
export function buildVolumeDiskXml(v: VolumeDiskDefinition): string {
  return builder.build({ disk: volumeDiskElement(v) }) as string;
}

/** The <interface> element alone, for `virsh attach-device` and `detach-device`. */
export function buildInterfaceXml(nic: InterfaceDefinition): string {
  return builder.build({ interface: interfaceElement(nic) }) as string;
}
