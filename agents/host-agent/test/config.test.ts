import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

/** The problem lines of the ConfigError that loadConfig(env) throws, without their indentation. */
function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const [head, ...lines] = (err as Error).message.split("\n");
    expect(head).toBe("invalid configuration:");
    for (const line of lines) expect(line).toMatch(/^ {2}CIRRUS_[A-Z0-9_]+[=:]/);
    return lines.map((l) => l.trim());
  }
  return expect.fail(`accepted ${JSON.stringify(env)}`);
}

/** The variable each problem line names, in order. */
const names = (lines: string[]) => lines.map((l) => l.split(/[=:]/)[0]);

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      controlEndpoint: "127.0.0.1:50052",
      hostName: hostname(),
      availabilityZone: "lab-1a",
      listen: "127.0.0.1:50061",
      advertise: "127.0.0.1:50061",
      stateDir: "/var/lib/cirrus/agent",
      controlCaFile: "/var/lib/cirrus/ca.pem",
      instancesDir: "/var/lib/cirrus/instances",
      driver: "libvirt",
      libvirtUri: "qemu:///system",
      hypervisor: "auto",
      domainPrefix: "cirrus-",
      heartbeatMs: 5000,
      orphanGraceMs: 60000,
      quarantineRetentionMs: 604800000,
      stopTimeoutMs: 30000,
    });
    expect(c.ssh).toBeUndefined();
    expect(c.enrolmentToken).toBeUndefined();
    expect(c.capacityOverride).toStrictEqual({});
    expect(c.fake).toStrictEqual({ capacity: { vcpus: 32, memoryMib: 131072, diskGib: 2048 }, delayMs: { min: 0, max: 0 }, failureRate: 0 });
    expect(c.network).toStrictEqual({ dir: "/var/lib/cirrus/network", prefix: "CIRRUS", metadataPort: 8775, imdsV2Required: false, outboundNat: undefined, managementCidrs: [] });
  });

  it("treats an empty variable as unset", () => {
    const empty = Object.fromEntries(
      [
        "CIRRUS_CONTROL_ENDPOINT", "CIRRUS_ENROLMENT_TOKEN", "CIRRUS_HOST_NAME", "CIRRUS_AVAILABILITY_ZONE", "CIRRUS_AGENT_LISTEN", "CIRRUS_AGENT_ADVERTISE",
        "CIRRUS_STATE_DIR", "CIRRUS_INSTANCES_DIR", "CIRRUS_DRIVER", "CIRRUS_LIBVIRT_URI", "CIRRUS_HYPERVISOR", "CIRRUS_DOMAIN_PREFIX",
        "CIRRUS_SSH_HOST", "CIRRUS_SSH_KEY", "CIRRUS_CAPACITY_VCPUS", "CIRRUS_CAPACITY_MEMORY_MIB", "CIRRUS_CAPACITY_DISK_GIB",
        "CIRRUS_HEARTBEAT_MS", "CIRRUS_ORPHAN_GRACE_MS", "CIRRUS_STOP_TIMEOUT_MS", "CIRRUS_FAKE_DELAY_MS", "CIRRUS_FAKE_FAILURE_RATE",
        "CIRRUS_NETWORK_DIR", "CIRRUS_NET_PREFIX", "CIRRUS_METADATA_PORT", "CIRRUS_IMDS_V2_REQUIRED", "CIRRUS_OUTBOUND_NAT",
      ].map((name) => [name, ""]),
    );
    expect(loadConfig(empty)).toStrictEqual(loadConfig({}));
    // With the host set, empty SSH settings take their defaults too, and an empty key is a missing one.
    expect(loadConfig({ CIRRUS_SSH_HOST: "h", CIRRUS_SSH_KEY: "/k", CIRRUS_SSH_PORT: "", CIRRUS_SSH_USER: "", CIRRUS_SSH_HOST_FINGERPRINT: "" }).ssh).toStrictEqual({
      host: "h", port: 22, username: "root", privateKeyPath: "/k", hostKeyFingerprint: undefined,
    });
    expect(names(problems({ CIRRUS_SSH_HOST: "h", CIRRUS_SSH_KEY: "" }))).toEqual(["CIRRUS_SSH_KEY"]);
  });

  it("names every invalid variable at once, one line each", () => {
    const lines = problems({
      CIRRUS_DRIVER: "xen",
      CIRRUS_HEARTBEAT_MS: "soon",
      CIRRUS_AGENT_LISTEN: "nowhere",
      CIRRUS_INSTANCES_DIR: "/var/lib/../tmp",
      CIRRUS_DOMAIN_PREFIX: "bad prefix",
      CIRRUS_SSH_HOST: "h",
      CIRRUS_FAKE_FAILURE_RATE: "2",
      CIRRUS_METADATA_PORT: "0",
    });
    expect([...names(lines)].sort()).toEqual(
      ["CIRRUS_AGENT_LISTEN", "CIRRUS_DOMAIN_PREFIX", "CIRRUS_DRIVER", "CIRRUS_FAKE_FAILURE_RATE", "CIRRUS_HEARTBEAT_MS", "CIRRUS_INSTANCES_DIR", "CIRRUS_METADATA_PORT", "CIRRUS_SSH_KEY"],
    );
    expect(lines).toContain('CIRRUS_DRIVER="xen": expected libvirt | fake');
    expect(lines).toContain('CIRRUS_HEARTBEAT_MS="soon": expected an integer in [100, 3600000]');
    expect(lines).toContain('CIRRUS_INSTANCES_DIR="/var/lib/../tmp": expected an absolute path of plain segments');
    expect(lines).toContain('CIRRUS_FAKE_FAILURE_RATE="2": expected a number in [0, 1]');
    expect(lines).toContain("CIRRUS_SSH_KEY: expected the absolute path of the private key (required with CIRRUS_SSH_HOST)");
  });

  it("takes integers in range and in plain decimal only", () => {
    expect(loadConfig({ CIRRUS_HEARTBEAT_MS: "100" }).heartbeatMs).toBe(100);
    expect(loadConfig({ CIRRUS_HEARTBEAT_MS: "3600000" }).heartbeatMs).toBe(3_600_000);
    expect(problems({ CIRRUS_HEARTBEAT_MS: "99" })).toEqual(['CIRRUS_HEARTBEAT_MS="99": expected an integer in [100, 3600000]']);
    expect(problems({ CIRRUS_HEARTBEAT_MS: "3600001" })).toEqual(['CIRRUS_HEARTBEAT_MS="3600001": expected an integer in [100, 3600000]']);
    expect(loadConfig({ CIRRUS_ORPHAN_GRACE_MS: "0", CIRRUS_STOP_TIMEOUT_MS: "0" })).toMatchObject({ orphanGraceMs: 0, stopTimeoutMs: 0 });
    for (const value of ["-5", "1e3", " 500", "500.0", "0x200"]) {
      expect(names(problems({ CIRRUS_HEARTBEAT_MS: value })), value).toEqual(["CIRRUS_HEARTBEAT_MS"]);
    }
  });

  it("reads the network settings", () => {
    const c = loadConfig({ CIRRUS_NETWORK_DIR: "/srv/net", CIRRUS_NET_PREFIX: "CX1", CIRRUS_METADATA_PORT: "9000", CIRRUS_IMDS_V2_REQUIRED: "true", CIRRUS_OUTBOUND_NAT: "eth1", CIRRUS_MANAGEMENT_CIDRS: "10.0.0.0/24, 192.0.2.7/32" });
    expect(c.network).toStrictEqual({
      dir: "/srv/net", prefix: "CX1", metadataPort: 9000, imdsV2Required: true, outboundNat: "eth1",
      managementCidrs: [{ network: "10.0.0.0", prefix: 24 }, { network: "192.0.2.7", prefix: 32 }],
    });
    for (const [name, value] of [["CIRRUS_MANAGEMENT_CIDRS", "10.0.0.0/33"], ["CIRRUS_MANAGEMENT_CIDRS", "10.0.0.0/8 -j ACCEPT"], ["CIRRUS_NET_PREFIX", "cirrus"], ["CIRRUS_NET_PREFIX", "TOO-LONG"], ["CIRRUS_METADATA_PORT", "0"], ["CIRRUS_IMDS_V2_REQUIRED", "yes"], ["CIRRUS_NETWORK_DIR", "relative"]] as const) {
      expect(names(problems({ [name]: value })), `${name}=${value}`).toEqual([name]);
    }
  });

  it("turns outbound NAT off or through the named interface", () => {
    expect(loadConfig({ CIRRUS_OUTBOUND_NAT: "off" }).network.outboundNat).toBeUndefined();
    expect(loadConfig({ CIRRUS_OUTBOUND_NAT: "enp3s0.100" }).network.outboundNat).toBe("enp3s0.100");
    for (const value of ["eth0; reboot", "a-name-too-long0"]) {
      expect(problems({ CIRRUS_OUTBOUND_NAT: value }), value).toEqual([`CIRRUS_OUTBOUND_NAT=${JSON.stringify(value)}: expected off or an interface name`]);
    }
  });

  it("validates the SSH settings only when CIRRUS_SSH_HOST is set", () => {
    const rest = { CIRRUS_SSH_PORT: "x", CIRRUS_SSH_USER: "bad user", CIRRUS_SSH_KEY: "relative", CIRRUS_SSH_HOST_FINGERPRINT: "SHA256:short" };
    expect(loadConfig(rest).ssh).toBeUndefined();
    expect([...names(problems({ CIRRUS_SSH_HOST: "bad host", ...rest }))].sort()).toEqual(
      ["CIRRUS_SSH_HOST", "CIRRUS_SSH_HOST_FINGERPRINT", "CIRRUS_SSH_KEY", "CIRRUS_SSH_PORT", "CIRRUS_SSH_USER"],
    );
    const fingerprint = `SHA256:${"A".repeat(43)}`;
    expect(loadConfig({ CIRRUS_SSH_HOST: "10.0.0.5", CIRRUS_SSH_PORT: "2222", CIRRUS_SSH_USER: "cirrus", CIRRUS_SSH_KEY: "/etc/cirrus/id_ed25519", CIRRUS_SSH_HOST_FINGERPRINT: fingerprint }).ssh).toStrictEqual({
      host: "10.0.0.5", port: 2222, username: "cirrus", privateKeyPath: "/etc/cirrus/id_ed25519", hostKeyFingerprint: fingerprint,
    });
  });

  it("parses CIRRUS_FAKE_DELAY_MS as MS or MIN-MAX", () => {
    expect(loadConfig({ CIRRUS_FAKE_DELAY_MS: "7" }).fake.delayMs).toStrictEqual({ min: 7, max: 7 });
    expect(loadConfig({ CIRRUS_FAKE_DELAY_MS: "5-20" }).fake.delayMs).toStrictEqual({ min: 5, max: 20 });
    expect(loadConfig({ CIRRUS_FAKE_DELAY_MS: "5-5" }).fake.delayMs).toStrictEqual({ min: 5, max: 5 });
    expect(problems({ CIRRUS_FAKE_DELAY_MS: "20-5" })).toEqual(['CIRRUS_FAKE_DELAY_MS="20-5": expected MS or MIN-MAX']);
    for (const value of ["-5", "5-", "1.5", "soon"]) {
      expect(names(problems({ CIRRUS_FAKE_DELAY_MS: value })), value).toEqual(["CIRRUS_FAKE_DELAY_MS"]);
    }
  });

  it("reads listen/advertise, capacity overrides and the fake failure rate", () => {
    expect(loadConfig({ CIRRUS_AGENT_LISTEN: "0.0.0.0:7000" })).toMatchObject({ listen: "0.0.0.0:7000", advertise: "0.0.0.0:7000" });
    expect(loadConfig({ CIRRUS_AGENT_LISTEN: "0.0.0.0:7000", CIRRUS_AGENT_ADVERTISE: "host1.lab:7000" })).toMatchObject({ listen: "0.0.0.0:7000", advertise: "host1.lab:7000" });
    // Only the fields given: an undefined one would hide the measured value.
    const c = loadConfig({ CIRRUS_CAPACITY_VCPUS: "12", CIRRUS_CAPACITY_DISK_GIB: "100", CIRRUS_DRIVER: "fake", CIRRUS_FAKE_FAILURE_RATE: "0.25" });
    expect(c.capacityOverride).toStrictEqual({ vcpus: 12, diskGib: 100 });
    expect(c.fake).toStrictEqual({ capacity: { vcpus: 12, memoryMib: 131072, diskGib: 100 }, delayMs: { min: 0, max: 0 }, failureRate: 0.25 });
    expect(names(problems({ CIRRUS_CAPACITY_VCPUS: "0" }))).toEqual(["CIRRUS_CAPACITY_VCPUS"]);
    expect(loadConfig({ CIRRUS_FAKE_FAILURE_RATE: "1" }).fake.failureRate).toBe(1);
    expect(names(problems({ CIRRUS_FAKE_FAILURE_RATE: "-0.1" }))).toEqual(["CIRRUS_FAKE_FAILURE_RATE"]);
  });
});
