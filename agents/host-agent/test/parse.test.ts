import { describe, expect, it } from "vitest";
import { agent } from "@cirrus/proto";
import {
  ARTIFACT_SUFFIXES,
  instanceIdOf,
  parseArtifacts,
  parseBlockCapacity,
  parseDfSizeGib,
  parseDomainInterfaces,
  parseDomStats,
  parseImageInfo,
  parseMemTotalMib,
  parseNameList,
  parseNproc,
  parseQuarantined,
  powerStateOf,
  quarantineName,
} from "../src/driver/libvirt/parse.js";
import { virshScript } from "../src/driver/libvirt/virsh.js";

const { PowerState } = agent;

describe("virsh output parsers", () => {
  it("reads `virsh list --name` with its trailing blank line", () => {
    expect(parseNameList("cirrus-i-0123456789abcdef0\nother vm\n\n")).toEqual(["cirrus-i-0123456789abcdef0", "other vm"]);
    expect(parseNameList("\n")).toEqual([]);
    expect(parseNameList("")).toEqual([]);
  });

  it("reads `virsh domstats --state`: quoted names (spaces and all), numeric states as virsh's words", () => {
    const out = [
      "Domain: 'cirrus-i-0123456789abcdef0'",
      "  state.state=1",
      "  state.reason=1",
      "",
      "Domain: 'other vm'",
      "  state.state=5",
      "  state.reason=0",
      "",
      "Domain: 'it''s'",
      "  state.state=4",
      "  state.reason=1",
      "",
      "",
    ].join("\n");
    expect([...parseDomStats(out)]).toEqual([
      ["cirrus-i-0123456789abcdef0", "running"],
      ["other vm", "shut off"],
      ["it''s", "in shutdown"],
    ]);
    expect(parseDomStats("")).toEqual(new Map());
    const words = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => parseDomStats(`Domain: 'd'\n  state.state=${n}\n`).get("d"));
    expect(words).toEqual(["no state", "running", "idle", "paused", "in shutdown", "shut off", "crashed", "pmsuspended"]);
    expect(() => parseDomStats("Domain: 'd'\n  state.state=9\n")).toThrow(/unknown state 9/);
    expect(() => parseDomStats("Domain: 'a'\nDomain: 'b'\n  state.state=1\n")).toThrow(/no state for domain "a"/);
    expect(() => parseDomStats("Domain: 'a'\n")).toThrow(/no state for domain "a"/);
  });

  it("maps libvirt states onto power states", () => {
    expect(powerStateOf("running")).toBe(PowerState.POWER_STATE_RUNNING);
    expect(powerStateOf("shut off")).toBe(PowerState.POWER_STATE_SHUT_OFF);
    for (const s of ["paused", "in shutdown", "crashed", "pmsuspended", "idle", "no state"]) expect(powerStateOf(s)).toBe(PowerState.POWER_STATE_OTHER);
  });

  it("claims only domains named prefix + a valid instance id", () => {
    expect(instanceIdOf("cirrus-i-0123456789abcdef0", "cirrus-")).toBe("i-0123456789abcdef0");
    expect(instanceIdOf("cirrus-test-i-0123456789abcdef0", "cirrus-")).toBeUndefined();
    expect(instanceIdOf("other-i-0123456789abcdef0", "cirrus-")).toBeUndefined();
    expect(instanceIdOf("cirrus-i-0123456789ABCDEF0", "cirrus-")).toBeUndefined();
    expect(instanceIdOf("cirrus-i-0123456789abcdef0x", "cirrus-")).toBeUndefined();
    expect(instanceIdOf("cirrus-", "cirrus-")).toBeUndefined();
  });

  it("finds this agent's instance ids among instance directory entries, by its prefix", () => {
    expect(
      parseArtifacts([
        "cirrus-i-0123456789abcdef0.qcow2",
        "cirrus-i-0123456789abcdef0.console.log",
        "cirrus-i-00000000000000001.console.log",
        "cirrus-i-0123456789abcdef0.qcow2.tmp",
        "cirrus-i-00000000000000002.staged.qcow2",
        "cirrus-i-00000000000000003.staged.qcow2.tmp",
        // Instance-store disks, made or staged, are the instance's files too.
        "cirrus-i-00000000000000006.ephemeral0.raw",
        "cirrus-i-00000000000000007.ephemeral9.staged.raw",
        "cirrus-i-00000000000000008.ephemeral10.raw",
        "cirrus-i-00000000000000008.ephemeral0.qcow2",
        // Another agent's files in a shared directory, and unprefixed ones: never ours.
        "other-i-00000000000000004.qcow2",
        "i-00000000000000005.qcow2",
        "notes.txt",
        "cirrus-i-123.qcow2",
        "quarantine",
      ], "cirrus-"),
    ).toEqual(["i-00000000000000001", "i-00000000000000002", "i-00000000000000006", "i-00000000000000007", "i-0123456789abcdef0"]);
    expect(ARTIFACT_SUFFIXES).toEqual(expect.arrayContaining(["qcow2", "staged.qcow2", "console.log", "ephemeral0.raw", "ephemeral0.staged.raw", "ephemeral9.raw", "ephemeral9.staged.raw"]));
    expect(ARTIFACT_SUFFIXES).toHaveLength(3 + 2 * 10);
  });

  it("names quarantined files with when they were quarantined, and reads that back by prefix", () => {
    const name = quarantineName("cirrus-", "i-0123456789abcdef0", 1764600000123, "qcow2");
    expect(name).toBe("cirrus-i-0123456789abcdef0.1764600000123.qcow2");
    expect(parseQuarantined([name, "cirrus-i-0123456789abcdef0.1764600000124.console.log", "other-i-0123456789abcdef0.1.qcow2", "cirrus-i-0123456789abcdef0.qcow2", "cirrus-i-0123456789abcdef0.x.qcow2", quarantineName("cirrus-", "i-0123456789abcdef0", 1764600000125, "ephemeral1.raw"), "cirrus-i-0123456789abcdef0.1.ephemeral1.img"], "cirrus-")).toEqual([
      { name, instanceId: "i-0123456789abcdef0", at: 1764600000123 },
      { name: "cirrus-i-0123456789abcdef0.1764600000124.console.log", instanceId: "i-0123456789abcdef0", at: 1764600000124 },
      { name: "cirrus-i-0123456789abcdef0.1764600000125.ephemeral1.raw", instanceId: "i-0123456789abcdef0", at: 1764600000125 },
    ]);
  });
});

describe("host facts parsers", () => {
  it("reads nproc", () => {
    expect(parseNproc("16\n")).toBe(16);
    expect(() => parseNproc("zero\n")).toThrow(/CPU count/);
  });

  it("reads MemTotal from /proc/meminfo in MiB", () => {
    expect(parseMemTotalMib("MemTotal:       24559128 kB\nMemFree:         1000 kB\n")).toBe(23983);
    expect(() => parseMemTotalMib("MemFree: 1 kB\n")).toThrow(/MemTotal/);
  });

  it("reads the filesystem size from df --output=size", () => {
    expect(parseDfSizeGib("1K-blocks\n264212084\n")).toBe(251);
    expect(() => parseDfSizeGib("1K-blocks\n")).toThrow(/df output/);
  });

  it("reads a disk's capacity from virsh domblkinfo", () => {
    expect(parseBlockCapacity("Capacity:       2147483648\nAllocation:     204800\nPhysical:       327680\n\n")).toBe(2 * 1024 ** 3);
    expect(() => parseBlockCapacity("error: no disk\n")).toThrow(/Capacity/);
  });

  it("reads qemu-img info JSON", () => {
    expect(parseImageInfo(JSON.stringify({ format: "qcow2", "virtual-size": 268435456, filename: "x" }))).toEqual({ format: "qcow2", virtualSize: 268435456 });
    expect(() => parseImageInfo("{}")).toThrow(/virtual-size/);
  });
});

describe("parseDomainInterfaces", () => {
  // What `virsh dumpxml` prints for a running domain (abridged).
  const live = `<domain type='qemu' id='7'>
  <name>cirrus-i-0123456789abcdef0</name>
  <devices>
    <disk type='file' device='disk'><target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'>
      <mac address='52:54:00:C1:00:14'/>
      <source bridge='cb0123456789abc'/>
      <target dev='ct0123456789abc'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:00:00:02'/>
      <source network='default'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:00:00:03'/>
      <source bridge='virbr9'/>
    </interface>
  </devices>
</domain>`;

  it("reads each bridge NIC's MAC (lowercased), bridge, tap, model and PCI address, skipping other types", () => {
    expect(parseDomainInterfaces(live)).toEqual([
      { mac: "52:54:00:c1:00:14", bridge: "cb0123456789abc", tap: "ct0123456789abc", model: "virtio", pciAddress: { domain: "0x0000", bus: "0x00", slot: "0x02", function: "0x0" } },
      { mac: "52:54:00:00:00:03", bridge: "virbr9", tap: undefined, model: undefined, pciAddress: undefined },
    ]);
  });

  it("finds no NIC in a domain without one, and refuses what is not a domain", () => {
    expect(parseDomainInterfaces("<domain type='qemu'><devices><disk type='file'/></devices></domain>")).toEqual([]);
    expect(() => parseDomainInterfaces("<network><name>default</name></network>")).toThrow(/not a libvirt domain/);
  });
});

describe("virshScript", () => {
  it("joins commands with ';' and single-quotes every token", () => {
    expect(virshScript([["define", "--", "/tmp/cirrus-domain.ab12.xml"], ["start", "--", "cirrus-i-0123456789abcdef0"]])).toBe(
      "'define' '--' '/tmp/cirrus-domain.ab12.xml' ; 'start' '--' 'cirrus-i-0123456789abcdef0'",
    );
  });

  it("refuses tokens virsh's own parser could read differently, and empty scripts", () => {
    for (const bad of ["a b", "it's", 'q"', "a;b", "a\\b", "x\ny", "", "$(id)"]) expect(() => virshScript([["start", bad]])).toThrow(/refusing token/);
    expect(() => virshScript([])).toThrow(/no commands/);
    expect(() => virshScript([[]])).toThrow(/empty command/);
  });
});
