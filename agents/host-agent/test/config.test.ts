import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

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
      instancesDir: "/var/lib/cirrus/instances",
      driver: "libvirt",
      libvirtUri: "qemu:///system",
      hypervisor: "auto",
      domainPrefix: "cirrus-",
      capacityOverride: {},
      heartbeatMs: 5000,
      orphanGraceMs: 60000,
      stopTimeoutMs: 30000,
    });
    expect(c.ssh).toBeUndefined();
    expect(c.enrolmentToken).toBeUndefined();
    expect(c.network).toEqual({ dir: "/var/lib/cirrus/network", prefix: "CIRRUS", metadataPort: 8775, imdsV2Required: false, outboundNat: undefined });
  });

  it("reads the network settings", () => {
    const c = loadConfig({ CIRRUS_NETWORK_DIR: "/srv/net", CIRRUS_NET_PREFIX: "CX1", CIRRUS_METADATA_PORT: "9000", CIRRUS_IMDS_V2_REQUIRED: "true", CIRRUS_OUTBOUND_NAT: "eth1" });
    expect(c.network).toEqual({ dir: "/srv/net", prefix: "CX1", metadataPort: 9000, imdsV2Required: true, outboundNat: "eth1" });
    expect(loadConfig({ CIRRUS_OUTBOUND_NAT: "off" }).network.outboundNat).toBeUndefined();
    for (const [name, value] of [["CIRRUS_NET_PREFIX", "cirrus"], ["CIRRUS_NET_PREFIX", "TOO-LONG"], ["CIRRUS_METADATA_PORT", "0"], ["CIRRUS_IMDS_V2_REQUIRED", "yes"], ["CIRRUS_OUTBOUND_NAT", "eth0; reboot"], ["CIRRUS_NETWORK_DIR", "relative"]] as const) {
      expect(() => loadConfig({ [name]: value }), `${name}=${value}`).toThrow(name);
    }
  });

  it("reads overrides, SSH settings and fake-driver knobs", () => {
    const c = loadConfig({
      CIRRUS_AGENT_LISTEN: "0.0.0.0:7000",
      CIRRUS_AGENT_ADVERTISE: "host1.lab:7000",
      CIRRUS_SSH_HOST: "10.0.0.5",
      CIRRUS_SSH_KEY: "/etc/cirrus/id_ed25519",
      CIRRUS_CAPACITY_VCPUS: "12",
      CIRRUS_DRIVER: "fake",
      CIRRUS_FAKE_DELAY_MS: "5-20",
      CIRRUS_FAKE_FAILURE_RATE: "0.25",
    });
    expect(c.listen).toBe("0.0.0.0:7000");
    expect(c.advertise).toBe("host1.lab:7000");
    expect(c.ssh).toEqual({ host: "10.0.0.5", port: 22, username: "root", privateKeyPath: "/etc/cirrus/id_ed25519", hostKeyFingerprint: undefined });
    expect(c.capacityOverride).toEqual({ vcpus: 12 });
    expect(c.fake).toEqual({ capacity: { vcpus: 12, memoryMib: 131072, diskGib: 2048 }, delayMs: { min: 5, max: 20 }, failureRate: 0.25 });
  });

  it("names every invalid variable at once", () => {
    let err: unknown;
    try {
      loadConfig({
        CIRRUS_DRIVER: "xen",
        CIRRUS_HEARTBEAT_MS: "soon",
        CIRRUS_AGENT_LISTEN: "nowhere",
        CIRRUS_INSTANCES_DIR: "/var/lib/../tmp",
        CIRRUS_DOMAIN_PREFIX: "bad prefix",
        CIRRUS_SSH_HOST: "h",
        CIRRUS_FAKE_FAILURE_RATE: "2",
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const name of ["CIRRUS_DRIVER", "CIRRUS_HEARTBEAT_MS", "CIRRUS_AGENT_LISTEN", "CIRRUS_INSTANCES_DIR", "CIRRUS_DOMAIN_PREFIX", "CIRRUS_SSH_KEY", "CIRRUS_FAKE_FAILURE_RATE"]) {
      expect(msg).toContain(name);
    }
  });
});
