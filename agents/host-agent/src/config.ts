// Agent configuration from environment variables, validated in one pass so a
// bad deployment hears about every mistake at once.
//
// Networking (libvirt driver only; the fake driver ignores it):
//   CIRRUS_NETWORK_DIR       directory on the driven host for dnsmasq's pid,
//                            lease, hosts and log files and the saved NIC
//                            registry (default /var/lib/cirrus/network; made 0755,
//                            since dnsmasq runs as nobody)
//   CIRRUS_NET_PREFIX        prefix of the agent's iptables chains and tag of its
//                            bridges (default CIRRUS: CIRRUS-FORWARD, CIRRUS-<hex>-IN…);
//                            only two agents sharing one host need different ones
//   CIRRUS_METADATA_PORT     port of the metadata service on each bridge's gateway
//                            address; guests reach it as 169.254.169.254:80 (default
//                            8775). Unavailable when the host is driven over SSH.
//   CIRRUS_IMDS_V2_REQUIRED  true: refuse metadata requests without an IMDSv2
//                            session token (default false)
//   CIRRUS_OUTBOUND_NAT      off, or the uplink interface through which guests
//                            reach the outside world with the host's address
//                            (MASQUERADE) (default off). Either way, a connection
//                            a guest opens leaves the host through another
//                            (non-Cirrus) interface only from an instance with an
//                            elastic IP, translated to it; replies to connections
//                            opened from outside always pass.
// The host needs iproute2, iptables (nf_tables or legacy), dnsmasq (Debian:
// dnsmasq-base) and the br_netfilter module; the agent sets
// net.ipv4.ip_forward=1 and net.bridge.bridge-nf-call-iptables=1.
import { hostname } from "node:os";
import type { Capacity } from "./driver/types.js";
import { isSafePath } from "./driver/spec.js";
import { NET_PREFIX } from "./network/names.js";
import type { SshTarget } from "./runner/ssh.js";

export interface AgentConfig {
  controlEndpoint: string;
  enrolmentToken?: string;
  hostName: string;
  availabilityZone: string;
  /** host:port the HostAgent service binds. */
  listen: string;
  /** host:port the control plane dials (registered as the endpoint). */
  advertise: string;
  stateDir: string;
  instancesDir: string;
  driver: "libvirt" | "fake";
  libvirtUri: string;
  hypervisor: "auto" | "kvm" | "qemu";
  domainPrefix: string;
  /** Set when the host is driven over SSH; otherwise commands run locally. */
  ssh?: SshTarget;
  /** Replaces the measured value of each field given. */
  capacityOverride: Partial<Capacity>;
  heartbeatMs: number;
  orphanGraceMs: number;
  stopTimeoutMs: number;
  fake: { capacity: Capacity; delayMs: { min: number; max: number }; failureRate: number };
  network: NetworkConfig;
}

export interface NetworkConfig {
  /** On the driven host. */
  dir: string;
  prefix: string;
  metadataPort: number;
  imdsV2Required: boolean;
  /** Uplink interface for outbound NAT; undefined: off. */
  outboundNat?: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Capacity of a fake host unless CIRRUS_CAPACITY_* says otherwise. */
const FAKE_DEFAULT_CAPACITY: Capacity = { vcpus: 32, memoryMib: 131_072, diskGib: 2_048 };

/**
 * Reads and validates the CIRRUS_* variables named below; unset or empty
 * means the default. Throws ConfigError naming every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const problems: string[] = [];
  const str = (name: string, fallback?: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === "" ? fallback : v;
  };
  const check = <T>(name: string, value: T | undefined, ok: (v: T) => boolean, expected: string): T | undefined => {
    if (value !== undefined && !ok(value)) {
      problems.push(`${name}=${JSON.stringify(value)}: expected ${expected}`);
      return undefined;
    }
    return value;
  };
  const int = (name: string, fallback: number | undefined, min: number, max: number): number | undefined => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    return check(name, n, (v) => Number.isSafeInteger(v) && v >= min && v <= max, `an integer in [${min}, ${max}]`) ?? fallback;
  };
  const oneOf = <T extends string>(name: string, fallback: T, values: readonly T[]): T =>
    (check(name, str(name, fallback) as T, (v) => values.includes(v), values.join(" | ")) ?? fallback);
  const endpoint = (name: string, fallback?: string) => check(name, str(name, fallback), isHostPort, "host:port");
  const path = (name: string, fallback: string) => check(name, str(name, fallback), isSafePath, "an absolute path of plain segments") ?? fallback;

  const listen = endpoint("CIRRUS_AGENT_LISTEN", "127.0.0.1:50061") ?? "";
  const sshHost = str("CIRRUS_SSH_HOST");
  let ssh: SshTarget | undefined;
  if (sshHost !== undefined) {
    const privateKeyPath = str("CIRRUS_SSH_KEY");
    if (!privateKeyPath?.startsWith("/")) problems.push("CIRRUS_SSH_KEY: the absolute path of the private key is required when CIRRUS_SSH_HOST is set");
    ssh = {
      host: check("CIRRUS_SSH_HOST", sshHost, (v) => /^[A-Za-z0-9.:_-]+$/.test(v), "a host name or address") ?? sshHost,
      port: int("CIRRUS_SSH_PORT", 22, 1, 65535) ?? 22,
      username: check("CIRRUS_SSH_USER", str("CIRRUS_SSH_USER", "root"), (v) => /^[a-z_][a-z0-9_.-]{0,31}$/i.test(v), "a user name") ?? "root",
      privateKeyPath: privateKeyPath ?? "",
      hostKeyFingerprint: check("CIRRUS_SSH_HOST_FINGERPRINT", str("CIRRUS_SSH_HOST_FINGERPRINT"), (v) => /^SHA256:[A-Za-z0-9+/]{43}$/.test(v), "an OpenSSH SHA256 fingerprint (SHA256:...)"),
    };
  }

  const capacityOverride: Partial<Capacity> = {};
  const vcpus = int("CIRRUS_CAPACITY_VCPUS", undefined, 1, 100_000);
  const memoryMib = int("CIRRUS_CAPACITY_MEMORY_MIB", undefined, 1, 1 << 30);
  const diskGib = int("CIRRUS_CAPACITY_DISK_GIB", undefined, 1, 1 << 30);
  if (vcpus !== undefined) capacityOverride.vcpus = vcpus;
  if (memoryMib !== undefined) capacityOverride.memoryMib = memoryMib;
  if (diskGib !== undefined) capacityOverride.diskGib = diskGib;

  const delay = check("CIRRUS_FAKE_DELAY_MS", str("CIRRUS_FAKE_DELAY_MS", "0"), (v) => /^\d+(-\d+)?$/.test(v) && parseRange(v).min <= parseRange(v).max, "MS or MIN-MAX");
  const outboundNat = check("CIRRUS_OUTBOUND_NAT", str("CIRRUS_OUTBOUND_NAT", "off"), (v) => /^[A-Za-z0-9_.-]{1,15}$/.test(v), "off or an interface name");
  const failureRate = Number(str("CIRRUS_FAKE_FAILURE_RATE", "0"));
  if (!(failureRate >= 0 && failureRate <= 1)) problems.push(`CIRRUS_FAKE_FAILURE_RATE=${JSON.stringify(str("CIRRUS_FAKE_FAILURE_RATE"))}: expected a number in [0, 1]`);

  const config: AgentConfig = {
    controlEndpoint: endpoint("CIRRUS_CONTROL_ENDPOINT", "127.0.0.1:50052") ?? "",
    enrolmentToken: str("CIRRUS_ENROLMENT_TOKEN"),
    hostName: check("CIRRUS_HOST_NAME", str("CIRRUS_HOST_NAME", hostname()), (v) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v), "a host name of at most 63 characters") ?? "",
    availabilityZone: check("CIRRUS_AVAILABILITY_ZONE", str("CIRRUS_AVAILABILITY_ZONE", "lab-1a"), (v) => /^[a-z0-9-]{1,64}$/.test(v), "a zone name such as lab-1a") ?? "",
    listen,
    advertise: endpoint("CIRRUS_AGENT_ADVERTISE", listen) ?? listen,
    stateDir: path("CIRRUS_STATE_DIR", "/var/lib/cirrus/agent"),
    instancesDir: path("CIRRUS_INSTANCES_DIR", "/var/lib/cirrus/instances"),
    driver: oneOf("CIRRUS_DRIVER", "libvirt", ["libvirt", "fake"] as const),
    libvirtUri: check("CIRRUS_LIBVIRT_URI", str("CIRRUS_LIBVIRT_URI", "qemu:///system"), (v) => /^[a-z0-9+]+:\/\/[^\s]*$/.test(v), "a libvirt URI") ?? "",
    hypervisor: oneOf("CIRRUS_HYPERVISOR", "auto", ["auto", "kvm", "qemu"] as const),
    domainPrefix: check("CIRRUS_DOMAIN_PREFIX", str("CIRRUS_DOMAIN_PREFIX", "cirrus-"), (v) => /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(v), "1-32 of [A-Za-z0-9_-]") ?? "",
    ssh,
    capacityOverride,
    heartbeatMs: int("CIRRUS_HEARTBEAT_MS", 5_000, 100, 3_600_000) ?? 5_000,
    orphanGraceMs: int("CIRRUS_ORPHAN_GRACE_MS", 60_000, 0, 86_400_000) ?? 60_000,
    stopTimeoutMs: int("CIRRUS_STOP_TIMEOUT_MS", 30_000, 0, 3_600_000) ?? 30_000,
    fake: {
      capacity: { ...FAKE_DEFAULT_CAPACITY, ...capacityOverride },
      delayMs: parseRange(delay ?? "0"),
      failureRate: failureRate >= 0 && failureRate <= 1 ? failureRate : 0,
    },
    network: {
      dir: path("CIRRUS_NETWORK_DIR", "/var/lib/cirrus/network"),
      prefix: check("CIRRUS_NET_PREFIX", str("CIRRUS_NET_PREFIX", "CIRRUS"), (v) => NET_PREFIX.test(v), "1-8 of [A-Z0-9], starting with a letter") ?? "CIRRUS",
      metadataPort: int("CIRRUS_METADATA_PORT", 8775, 1, 65535) ?? 8775,
      imdsV2Required: oneOf("CIRRUS_IMDS_V2_REQUIRED", "false", ["true", "false"] as const) === "true",
      outboundNat: outboundNat === "off" ? undefined : outboundNat,
    },
  };
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  return config;
}

function isHostPort(v: string): boolean {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}

function parseRange(v: string): { min: number; max: number } {
  const [a, b] = v.split("-").map(Number);
  return { min: a ?? 0, max: b ?? a ?? 0 };
}
