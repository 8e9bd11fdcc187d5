import { describe, expect, it } from "vitest";
import type { agent } from "@cirrus/proto";
import { isSafePath, validateSpec } from "../src/driver/spec.js";
import { DriverError } from "../src/driver/types.js";

const good: agent.InstanceSpec = {
  instanceId: "i-0123456789abcdef0",
  vcpus: 1,
  memoryMib: 256,
  rootDiskGib: 1,
  image: { imageId: "ami-0123456789abcdef0", rootPath: "/var/lib/cirrus/images/a/rootfs.qcow2", kernelPath: "/var/lib/cirrus/images/a/vmlinuz", ramdiskPath: "", kernelCmdline: "console=ttyS0" },
  network: undefined,
  reuseRootDisk: false,
  volumes: [],
  instanceStore: [],
};

function invalid(spec: agent.InstanceSpec): string {
  try {
    validateSpec(spec);
  } catch (err) {
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).kind).toBe("InvalidSpec");
    return (err as Error).message;
  }
  throw new Error("spec was accepted");
}

describe("validateSpec", () => {
  it("accepts a good spec and drops empty optional fields", () => {
    const v = validateSpec(good);
    expect(v.image.ramdiskPath).toBeUndefined();
    expect(v.image.kernelPath).toBe("/var/lib/cirrus/images/a/vmlinuz");
  });

  it("rejects bad ids, sizes and paths with InvalidSpec", () => {
    expect(invalid({ ...good, instanceId: "i-123; rm -rf /" })).toMatch(/instance id/);
    expect(invalid({ ...good, vcpus: 0 })).toMatch(/vcpus/);
    expect(invalid({ ...good, memoryMib: 1.5 })).toMatch(/memoryMib/);
    expect(invalid({ ...good, rootDiskGib: -1 })).toMatch(/rootDiskGib/);
    expect(invalid({ ...good, image: undefined })).toMatch(/image is missing/);
    expect(invalid({ ...good, image: { ...good.image!, rootPath: "" } })).toMatch(/rootPath is missing/);
    expect(invalid({ ...good, image: { ...good.image!, rootPath: "relative/disk.qcow2" } })).toMatch(/rootPath/);
    expect(invalid({ ...good, image: { ...good.image!, kernelPath: "/var/lib/../../etc/shadow" } })).toMatch(/kernelPath/);
    expect(invalid({ ...good, image: { ...good.image!, kernelPath: "", kernelCmdline: "x" } })).toMatch(/need image.kernelPath/);
    expect(invalid({ ...good, image: { ...good.image!, kernelCmdline: "a\nb" } })).toMatch(/kernelCmdline/);
  });

  it("validates the NIC: normalizes the MAC, rejects anything outside strict shapes", () => {
    const nic: agent.NetworkInterface = { subnetId: "subnet-0123456789abcdef0", subnetCidr: "10.0.1.0/24", gatewayIp: "10.0.1.1", privateIp: "10.0.1.5", macAddress: "52:54:00:AB:cd:0f" };
    expect(validateSpec({ ...good, network: nic }).network).toEqual({ subnetId: nic.subnetId, subnet: { network: "10.0.1.0", prefix: 24 }, gatewayIp: "10.0.1.1", privateIp: "10.0.1.5", mac: "52:54:00:ab:cd:0f" });
    const bad: Array<[Partial<agent.NetworkInterface>, RegExp]> = [
      [{ subnetId: "subnet-1; reboot" }, /subnetId/],
      [{ subnetCidr: "10.0.1.5/24" }, /subnetCidr/], // host bits set
      [{ subnetCidr: "10.0.1.0/31" }, /subnetCidr/],
      [{ subnetCidr: "10.0.1.0/24 " }, /subnetCidr/],
      [{ gatewayIp: "10.0.2.1" }, /gatewayIp/], // outside the subnet
      [{ gatewayIp: "10.0.1.0" }, /gatewayIp/], // network address
      [{ privateIp: "10.0.1.255" }, /privateIp/], // broadcast address
      [{ privateIp: "10.0.1.05" }, /privateIp/], // leading zero
      [{ privateIp: "10.0.1.1" }, /gateway address/],
      [{ macAddress: "53:54:00:12:34:56" }, /macAddress/], // multicast
      [{ macAddress: "52:54:00:12:34:56\n" }, /macAddress/],
      [{ macAddress: "52-54-00-12-34-56" }, /macAddress/],
    ];
    for (const [change, message] of bad) expect(invalid({ ...good, network: { ...nic, ...change } }), JSON.stringify(change)).toMatch(message);
  });
});

describe("validateSpec's instance store", () => {
  const disk = (name: string, target: string, sizeGib = 75): agent.InstanceStoreDisk => ({ name, target, sizeGib });

  it("accepts up to three disks named ephemeral0…9 at vdx…vdz, and none", () => {
    expect(validateSpec(good).instanceStore).toEqual([]);
    const three = [disk("ephemeral0", "vdx", 1), disk("ephemeral1", "vdy", 16384), disk("ephemeral9", "vdz")];
    expect(validateSpec({ ...good, instanceStore: three }).instanceStore).toEqual(three);
  });

  it("rejects bad names, targets, sizes, repeats, too many disks and a target a volume has, with InvalidSpec", () => {
    const bad: Array<[agent.InstanceStoreDisk[], RegExp]> = [
      [[disk("ephemeral10", "vdx")], /name is ephemeral0…ephemeral9/],
      [[disk("ephemeral", "vdx")], /name is ephemeral0…ephemeral9/],
      [[disk("ephemeral0/../x", "vdx")], /name is ephemeral0…ephemeral9/],
      [[disk("ephemeral0", "vdw")], /target is vdx…vdz/],
      [[disk("ephemeral0", "vdx ")], /target is vdx…vdz/],
      [[disk("ephemeral0", "vdx", 0)], /sizeGib/],
      [[disk("ephemeral0", "vdx", 16385)], /sizeGib/],
      [[disk("ephemeral0", "vdx", 1.5)], /sizeGib/],
      [[disk("ephemeral0", "vdx"), disk("ephemeral0", "vdy")], /name ephemeral0 appears twice/],
      [[disk("ephemeral0", "vdx"), disk("ephemeral1", "vdx")], /target vdx appears twice/],
      [[disk("ephemeral0", "vdx"), disk("ephemeral1", "vdy"), disk("ephemeral2", "vdz"), disk("ephemeral3", "vdz")], /at most 3/],
    ];
    for (const [instanceStore, message] of bad) expect(invalid({ ...good, instanceStore }), JSON.stringify(instanceStore)).toMatch(message);
    const volumes = [{ volumeId: "vol-0123456789abcdef0", target: "vdx", qos: undefined }];
    expect(invalid({ ...good, volumes, instanceStore: [disk("ephemeral0", "vdx")] })).toMatch(/vdx is both volume vol-0123456789abcdef0's and an instance-store disk's/);
  });
});

describe("isSafePath", () => {
  it("allows plain absolute paths only", () => {
    for (const p of ["/var/lib/cirrus/images/ami-1/rootfs.qcow2", "/a", "/a/b.c/d_e-f+g@h=i", "/a/...x"]) expect(isSafePath(p), p).toBe(true);
    for (const p of ["", "/", "a/b", "/a/../b", "/a/./b", "/a/..", "/a//b", "/a/b/", "/a b", "/a;b", "/a$(x)", "/a\nb", "/a'b", "/ä"]) expect(isSafePath(p), p).toBe(false);
  });
});
