import { XMLParser } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { buildDomainXml, buildInterfaceXml, buildVolumeDiskXml, domainUuid, volumeSerial, type DomainDefinition } from "../src/driver/libvirt/domain-xml.js";
import { parseDomainDisks, parseDomainInterfaces } from "../src/driver/libvirt/parse.js";

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@_", parseTagValue: false, isArray: (name) => name === "entry" });

const base: DomainDefinition = {
  name: "cirrus-i-0123456789abcdef0",
  uuid: domainUuid("cirrus-i-0123456789abcdef0"),
  hypervisor: "qemu",
  vcpus: 2,
  memoryMib: 512,
  serial: "i-0123456789abcdef0",
  kernel: { path: "/var/lib/cirrus/images/ami-1/vmlinuz", initrdPath: "/var/lib/cirrus/images/ami-1/initrd.img", cmdline: "console=ttyS0 panic=-1 quiet" },
  rootDiskPath: "/var/lib/cirrus/instances/i-0123456789abcdef0.qcow2",
  consoleLogPath: "/var/lib/cirrus/instances/i-0123456789abcdef0.console.log",
};

function parse(xml: string) {
  return parser.parse(xml).domain;
}

describe("buildDomainXml", () => {
  it("describes the domain the driver promises", () => {
    const d = parse(buildDomainXml(base));
    expect(d["@_type"]).toBe("qemu");
    expect(d.name).toBe(base.name);
    expect(d.uuid).toBe(base.uuid);
    expect(d.vcpu).toBe("2");
    expect(d.memory).toEqual({ "@_unit": "MiB", "#text": "512" });
    expect(d.os.kernel).toBe(base.kernel!.path);
    expect(d.os.initrd).toBe(base.kernel!.initrdPath);
    expect(d.os.cmdline).toBe("console=ttyS0 panic=-1 quiet");
    expect(d.os.smbios["@_mode"]).toBe("sysinfo");
    expect(d.os.boot).toBeUndefined();
    const entries = Object.fromEntries(d.sysinfo.system.entry.map((e: Record<string, string>) => [e["@_name"], e["#text"]]));
    expect(entries.serial).toBe("i-0123456789abcdef0");
    expect(entries.uuid).toBe(base.uuid);
    expect(d.on_poweroff).toBe("destroy");
    expect(d.on_reboot).toBe("restart");
    expect(d.on_crash).toBe("destroy");
    expect(d.devices.disk.source["@_file"]).toBe(base.rootDiskPath);
    expect(d.devices.disk.target).toEqual({ "@_dev": "vda", "@_bus": "virtio" });
    expect(d.devices.disk.driver["@_type"]).toBe("qcow2");
    expect(d.devices.serial["@_type"]).toBe("file");
    expect(d.devices.serial.source).toEqual({ "@_path": base.consoleLogPath, "@_append": "on" });
    expect(d.devices.interface).toBeUndefined();
  });

  it("writes the NIC alone for hot-plugging, keeping its PCI slot, and reads back as it was written", () => {
    const nic = { bridge: "cb0123456789abc", tap: "ct0123456789abc", mac: "52:54:00:12:34:56", pciAddress: { domain: "0x0000", bus: "0x00", slot: "0x02", function: "0x0" } };
    const xml = buildInterfaceXml(nic);
    expect(parser.parse(xml).interface).toEqual({
      "@_type": "bridge",
      source: { "@_bridge": "cb0123456789abc" },
      target: { "@_dev": "ct0123456789abc" },
      mac: { "@_address": "52:54:00:12:34:56" },
      model: { "@_type": "virtio" },
      address: { "@_type": "pci", "@_domain": "0x0000", "@_bus": "0x00", "@_slot": "0x02", "@_function": "0x0" },
    });
    const inDomain = buildDomainXml({ ...base, nic });
    expect(parseDomainInterfaces(inDomain)).toEqual([{ ...nic, model: "virtio" }]);
    expect(parser.parse(buildInterfaceXml({ ...nic, pciAddress: undefined })).interface.address).toBeUndefined();
  });

  it("adds a virtio NIC on the bridge with a fixed tap name and MAC when asked", () => {
    const d = parse(buildDomainXml({ ...base, nic: { bridge: "cb0123456789abc", tap: "ct0123456789abc", mac: "52:54:00:12:34:56" } }));
    expect(d.devices.interface).toEqual({
      "@_type": "bridge",
      source: { "@_bridge": "cb0123456789abc" },
      target: { "@_dev": "ct0123456789abc" },
      mac: { "@_address": "52:54:00:12:34:56" },
      model: { "@_type": "virtio" },
    });
  });

  it("boots from the disk when the image has no kernel", () => {
    const d = parse(buildDomainXml({ ...base, kernel: undefined }));
    expect(d.os.kernel).toBeUndefined();
    expect(d.os.boot["@_dev"]).toBe("hd");
  });

  it("uses type kvm when asked", () => {
    expect(parse(buildDomainXml({ ...base, hypervisor: "kvm" }))["@_type"]).toBe("kvm");
  });

  it("cannot be injected into through any string field", () => {
    const evil = `x'"/><disk type='block'><source dev='/dev/sda'/></disk><name>y</name><!--&amp;]]>`;
    const xml = buildDomainXml({
      ...base,
      name: evil,
      serial: evil,
      kernel: { path: evil, initrdPath: evil, cmdline: evil },
      rootDiskPath: evil,
      consoleLogPath: evil,
    });
    expect(xml).not.toContain("<disk type='block'>");
    expect(xml).not.toContain("<!--");
    const d = parse(xml);
    // Each hostile value survives as plain data in exactly the place it was put.
    expect(d.name).toBe(evil);
    expect(d.os.cmdline).toBe(evil);
    expect(d.devices.disk.source["@_file"]).toBe(evil);
    expect(d.devices.serial.source["@_path"]).toBe(evil);
    expect(Array.isArray(d.devices.disk)).toBe(false);
    expect(d.sysinfo.system.entry.find((e: Record<string, string>) => e["@_name"] === "serial")["#text"]).toBe(evil);
  });
});

describe("domainUuid", () => {
  it("is stable per name, distinct across names, and RFC 9562 shaped", () => {
    expect(domainUuid("cirrus-i-0123456789abcdef0")).toBe(domainUuid("cirrus-i-0123456789abcdef0"));
    expect(domainUuid("cirrus-i-0123456789abcdef0")).not.toBe(domainUuid("test-i-0123456789abcdef0"));
    expect(domainUuid("a")).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe("volume disks", () => {
  const volume = { volumeId: "vol-0123456789abcdef0", target: "vdb", path: "/var/lib/cirrus/storage/zone/volumes/vol-0123456789abcdef0.qcow2", qos: { totalIopsSec: 3000, totalBytesSec: 0, totalIopsSecMax: 6000, totalIopsSecMaxLength: 60 } };

  it("follows the root disk in the definition, reads back as it was given: serial without the hyphen, cache none, only the limits set", () => {
    const xml = buildDomainXml({ ...base, volumes: [volume, { ...volume, volumeId: "vol-00000000000000001", target: "vdc", qos: undefined }] });
    const disks = parseDomainDisks(xml);
    expect(disks.map((d) => [d.target, d.serial, d.source])).toEqual([
      ["vda", undefined, base.rootDiskPath],
      ["vdb", "vol0123456789abcdef0", volume.path],
      ["vdc", "vol00000000000000001", volume.path],
    ]);
    expect(disks[1]!.qos).toEqual(volume.qos);
    expect(disks[2]!.qos).toEqual({ totalIopsSec: 0, totalBytesSec: 0, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 });
    expect(xml).not.toContain("total_bytes_sec");
    expect(buildVolumeDiskXml(volume)).toContain("cache=\"none\"");
    expect(volumeSerial("vol-0123456789abcdef0")).toHaveLength(20);
  });

  it("reads a disk's first backing file (a live snapshot's overlay names the volume's file)", () => {
    const xml = `<domain><devices><disk type='file' device='disk'><source file='/z/volumes/v.snap.live.qcow2'/><backingStore type='file'><format type='qcow2'/><source file='/z/volumes/v.qcow2'/><backingStore/></backingStore><target dev='vdb' bus='virtio'/><serial>vol0123456789abcdef0</serial></disk></devices></domain>`;
    expect(parseDomainDisks(xml)).toMatchObject([{ target: "vdb", source: "/z/volumes/v.snap.live.qcow2", backing: "/z/volumes/v.qcow2", serial: "vol0123456789abcdef0" }]);
  });
});

describe("instance-store disks", () => {
  it("follow the volumes as raw virtio disks with cache none, serial = name, and read back as disks", () => {
    const scratch = { name: "ephemeral0", target: "vdx", path: "/var/lib/cirrus/instances/cirrus-i-0123456789abcdef0.ephemeral0.raw" };
    const volume = { volumeId: "vol-0123456789abcdef0", target: "vdb", path: "/z/volumes/vol-0123456789abcdef0.qcow2" };
    const xml = buildDomainXml({ ...base, volumes: [volume], instanceStore: [scratch, { ...scratch, name: "ephemeral1", target: "vdy", path: "/i/e1.raw" }] });
    expect(parseDomainDisks(xml).map((d) => [d.target, d.serial, d.source])).toEqual([
      ["vda", undefined, base.rootDiskPath],
      ["vdb", "vol0123456789abcdef0", volume.path],
      ["vdx", "ephemeral0", scratch.path],
      ["vdy", "ephemeral1", "/i/e1.raw"],
    ]);
    const disk = parse(xml).devices.disk[2];
    expect(disk.driver).toEqual({ "@_name": "qemu", "@_type": "raw", "@_cache": "none" });
    expect(disk.target).toEqual({ "@_dev": "vdx", "@_bus": "virtio" });
    expect(parse(buildDomainXml(base)).devices.disk.driver["@_type"]).toBe("qcow2");
  });
});
