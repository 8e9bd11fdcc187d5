// Agent configuration from the CIRRUS_* environment variables, validated with
// zod in one pass so a bad deployment hears about every mistake at once.
//
// Networking (CIRRUS_NETWORK_DIR, CIRRUS_NET_PREFIX, CIRRUS_METADATA_PORT,
// CIRRUS_IMDS_V2_REQUIRED, CIRRUS_OUTBOUND_NAT; described in the schema below)
// is used by the libvirt driver only; the fake driver ignores it. The host needs
// iproute2, iptables (nf_tables or legacy), dnsmasq (Debian: dnsmasq-base) and
// the br_netfilter module; the agent sets net.ipv4.ip_forward=1 and
// net.bridge.bridge-nf-call-iptables=1.
import { hostname } from "node:os";
import { z } from "zod";
import { type Cidr, dirListProblem, parseCidr, parseDirList } from "@cirrus/common";
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
  /** The cluster CA's certificate file (CIRRUS_CONTROL_CA). */
  controlCaFile: string;
  instancesDir: string;
  /** Where image files may come from (CIRRUS_IMAGE_DIRS). */
  imageDirs: string[];
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
  quarantineRetentionMs: number;
  stopTimeoutMs: number;
  fake: { capacity: Capacity; delayMs: { min: number; max: number }; failureRate: number };
  network: NetworkConfig;
  storage: StorageConfig;
}

/** Block storage (docs/ARCHITECTURE.md, "Block storage"); every directory on the driven host. */
export interface StorageConfig {
  /** The zone's volume store root, mounted at this path by every host of the zone. */
  volumeDir: string;
  /** The region's snapshot store root, mounted at this path by every host of the region. */
  snapshotDir: string;
  /** Where CopySnapshot's export and import files live (outside both stores). */
  transferDir: string;
  /** How long DetachVolume waits for a running guest by default. */
  detachWaitMs: number;
}

export interface NetworkConfig {
  /** On the driven host. */
  dir: string;
  prefix: string;
  metadataPort: number;
  imdsV2Required: boolean;
  /** Uplink interface for outbound NAT; undefined: off. */
  outboundNat?: string;
  /** CIRRUS_MANAGEMENT_CIDRS, without the control endpoint's address (added once it is resolved). */
  managementCidrs: Cidr[];
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Capacity of a fake host unless CIRRUS_CAPACITY_* says otherwise. */
const FAKE_DEFAULT_CAPACITY: Capacity = { vcpus: 32, memoryMib: 131_072, diskGib: 2_048 };

// Each message completes "NAME=value: expected …". Defaults are written as the
// variable would be, and are validated like a given value.

/** Decimal digits only: z.coerce.number() would also take "1e3", " 5" or "0x10". */
const int = (min: number, max: number) =>
  z.string().refine((v) => /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max, `an integer in [${min}, ${max}]`).transform(Number);
const endpoint = z.string().refine(isHostPort, "host:port");
const path = z.string().refine(isSafePath, "an absolute path of plain segments");

const schema = z.object({
  /** HostControl of the control plane (the API's CIRRUS_CONTROL_LISTEN). */
  CIRRUS_CONTROL_ENDPOINT: endpoint.default("127.0.0.1:50052"),
  /** Needed only for the first registration; the host secret it earns is kept in CIRRUS_STATE_DIR. */
  CIRRUS_ENROLMENT_TOKEN: z.string().optional(),
  CIRRUS_HOST_NAME: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "a host name of at most 63 characters").default(hostname),
  CIRRUS_AVAILABILITY_ZONE: z.string().regex(/^[a-z0-9-]{1,64}$/, "a zone name such as lab-1a").default("lab-1a"),
  /** Where the HostAgent service binds. */
  CIRRUS_AGENT_LISTEN: endpoint.default("127.0.0.1:50061"),
  /** The endpoint registered for the control plane to dial (default: CIRRUS_AGENT_LISTEN). */
  CIRRUS_AGENT_ADVERTISE: endpoint.optional(),
  /** Holds the host identity (host.json); made 0700. */
  CIRRUS_STATE_DIR: path.default("/var/lib/cirrus/agent"),
  /** The cluster CA's certificate (PEM), as the control plane writes it (its CIRRUS_CA_CERT_FILE): HostControl's certificate must chain to it. */
  CIRRUS_CONTROL_CA: path.default("/var/lib/cirrus/ca.pem"),
  /** On the driven host: instance disks and console logs. */
  CIRRUS_INSTANCES_DIR: path.default("/var/lib/cirrus/instances"),
  /** Comma-separated directories image files may come from, symlinks followed (as the control plane's CIRRUS_IMAGE_DIRS). */
  CIRRUS_IMAGE_DIRS: z.string().refine((v) => dirListProblem(v) === undefined, (v) => ({ message: `must be a comma-separated list of absolute directories: ${dirListProblem(v)}` })).default("/var/lib/cirrus/images"),
  /** fake: an in-memory hypervisor, for tests and demos. */
  CIRRUS_DRIVER: z.enum(["libvirt", "fake"]).default("libvirt"),
  CIRRUS_LIBVIRT_URI: z.string().regex(/^[a-z0-9+]+:\/\/[^\s]*$/, "a libvirt URI").default("qemu:///system"),
  /** auto: kvm if the host can, else qemu (emulation). */
  CIRRUS_HYPERVISOR: z.enum(["auto", "kvm", "qemu"]).default("auto"),
  /** Prefix of libvirt domain names: domains without it are not the agent's. */
  CIRRUS_DOMAIN_PREFIX: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, "1-32 of [A-Za-z0-9_-]").default("cirrus-"),
  /** Each replaces the measured value it names. */
  CIRRUS_CAPACITY_VCPUS: int(1, 100_000).optional(),
  CIRRUS_CAPACITY_MEMORY_MIB: int(1, 1 << 30).optional(),
  CIRRUS_CAPACITY_DISK_GIB: int(1, 1 << 30).optional(),
  CIRRUS_HEARTBEAT_MS: int(100, 3_600_000).default("5000"),
  /** How long an instance or NIC nobody wants survives before it is considered for removal (on evidence) or forgotten. */
  CIRRUS_ORPHAN_GRACE_MS: int(0, 86_400_000).default("60000"),
  /** How long a removed orphan's disk and console log stay in the quarantine directory (default 7 days). */
  CIRRUS_QUARANTINE_RETENTION_MS: int(0, 365 * 86_400_000).default(String(7 * 86_400_000)),
  /** How long a graceful stop waits before powering off. */
  CIRRUS_STOP_TIMEOUT_MS: int(0, 3_600_000).default("30000"),
  /** The zone's volume store (directory backend): shared by every host of the zone at the same path (NFS); several agents on one machine may share it. */
  CIRRUS_VOLUME_STORE_DIR: path.default("/var/lib/cirrus/storage/zone"),
  /** The region's snapshot store: shared by every host of the region at the same path; may be on the same filesystem as the volumes. */
  CIRRUS_SNAPSHOT_STORE_DIR: path.default("/var/lib/cirrus/storage/region"),
  /** CopySnapshot's export/import files: outside both stores, never the agent's state directory. */
  CIRRUS_STORAGE_TRANSFER_DIR: path.default("/var/lib/cirrus/storage/transfer"),
  /** How long DetachVolume waits for a running guest to release a volume when the request names no wait. */
  CIRRUS_DETACH_WAIT_MS: int(0, 3_600_000).default("20000"),
  /** Fake driver: latency of each operation, fixed or uniformly drawn from MIN-MAX. */
  CIRRUS_FAKE_DELAY_MS: z.string().transform(parseRange).refine((r) => r !== undefined, "MS or MIN-MAX").default("0"),
  /** Fake driver: probability that an operation fails. */
  CIRRUS_FAKE_FAILURE_RATE: z.string().refine((v) => Number(v) >= 0 && Number(v) <= 1, "a number in [0, 1]").transform(Number).default("0"),
  /**
   * Directory on the driven host for dnsmasq's pid, lease, hosts and log files
   * and the saved NIC registry; made 0755, since dnsmasq runs as nobody.
   */
  CIRRUS_NETWORK_DIR: path.default("/var/lib/cirrus/network"),
  /**
   * Prefix of the agent's iptables chains and tag of its bridges
   * (CIRRUS-FORWARD, CIRRUS-<hex>-IN…); only two agents sharing one host need
   * different ones.
   */
  CIRRUS_NET_PREFIX: z.string().regex(NET_PREFIX, "1-8 of [A-Z0-9], starting with a letter").default("CIRRUS"),
  /**
   * Port of the metadata service on each bridge's gateway address; guests
   * reach it as 169.254.169.254:80. Unavailable when the host is driven over SSH.
   */
  CIRRUS_METADATA_PORT: int(1, 65535).default("8775"),
  /** true: refuse metadata requests without an IMDSv2 session token. */
  CIRRUS_IMDS_V2_REQUIRED: z.enum(["true", "false"]).default("false"),
  /**
   * off, or the uplink interface through which guests reach the outside world
   * with the host's address (MASQUERADE). Either way, a connection a guest
   * opens leaves the host through another (non-Cirrus) interface only from an
   * instance with an elastic IP, translated to it; replies to connections
   * opened from outside always pass. ("off" matches the interface pattern too.)
   */
  CIRRUS_OUTBOUND_NAT: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, "off or an interface name").default("off"),
  /**
   * Comma-separated IPv4 CIDRs guests may never open connections to, whatever
   * their security groups, elastic IP or outbound NAT: where the control
   * plane, the agents and other management services live. The control
   * endpoint's address is always one; 169.254.0.0/16 (but the metadata
   * service) is always closed.
   */
  CIRRUS_MANAGEMENT_CIDRS: z.string().refine((v) => v.split(",").every((c) => c.trim() === "" || parseCidr(c.trim()) !== undefined), "a comma-separated list of IPv4 CIDRs").default(""),
});

const SSH_KEY_EXPECTED = "the absolute path of the private key (required with CIRRUS_SSH_HOST)";

/** Read only when CIRRUS_SSH_HOST is set: without it the agent never uses them. */
const sshSchema = z.object({
  /** Drive the host over SSH; unset: commands run locally. */
  CIRRUS_SSH_HOST: z.string().regex(/^[A-Za-z0-9.:_-]+$/, "a host name or address"),
  CIRRUS_SSH_PORT: int(1, 65535).default("22"),
  CIRRUS_SSH_USER: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, "a user name").default("root"),
  CIRRUS_SSH_KEY: z.string({ required_error: SSH_KEY_EXPECTED }).startsWith("/", SSH_KEY_EXPECTED),
  /** Unset: any host key is accepted (the agent warns). */
  CIRRUS_SSH_HOST_FINGERPRINT: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "an OpenSSH SHA256 fingerprint (SHA256:...)").optional(),
});

/**
 * Reads and validates the CIRRUS_* variables above; unset or empty means the
 * default. Throws ConfigError naming every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  // An empty value is how an env file or a unit says "not set".
  const given = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ""));
  const main = schema.safeParse(given);
  const ssh = given.CIRRUS_SSH_HOST === undefined ? undefined : sshSchema.safeParse(given);
  if (!main.success || ssh?.success === false) {
    const issues = [...(main.error?.issues ?? []), ...(ssh?.error?.issues ?? [])];
    throw new ConfigError(`invalid configuration:\n  ${issues.map((i) => describeIssue(i, given)).join("\n  ")}`);
  }
  const e = main.data;

  // Only the fields given: an undefined one would blank the measured value when spread over it.
  const capacityOverride: Partial<Capacity> = {};
  if (e.CIRRUS_CAPACITY_VCPUS !== undefined) capacityOverride.vcpus = e.CIRRUS_CAPACITY_VCPUS;
  if (e.CIRRUS_CAPACITY_MEMORY_MIB !== undefined) capacityOverride.memoryMib = e.CIRRUS_CAPACITY_MEMORY_MIB;
  if (e.CIRRUS_CAPACITY_DISK_GIB !== undefined) capacityOverride.diskGib = e.CIRRUS_CAPACITY_DISK_GIB;

  return {
    controlEndpoint: e.CIRRUS_CONTROL_ENDPOINT,
    enrolmentToken: e.CIRRUS_ENROLMENT_TOKEN,
    hostName: e.CIRRUS_HOST_NAME,
    availabilityZone: e.CIRRUS_AVAILABILITY_ZONE,
    listen: e.CIRRUS_AGENT_LISTEN,
    advertise: e.CIRRUS_AGENT_ADVERTISE ?? e.CIRRUS_AGENT_LISTEN,
    stateDir: e.CIRRUS_STATE_DIR,
    controlCaFile: e.CIRRUS_CONTROL_CA,
    instancesDir: e.CIRRUS_INSTANCES_DIR,
    imageDirs: parseDirList(e.CIRRUS_IMAGE_DIRS),
    driver: e.CIRRUS_DRIVER,
    libvirtUri: e.CIRRUS_LIBVIRT_URI,
    hypervisor: e.CIRRUS_HYPERVISOR,
    domainPrefix: e.CIRRUS_DOMAIN_PREFIX,
    ssh: ssh && {
      host: ssh.data.CIRRUS_SSH_HOST,
      port: ssh.data.CIRRUS_SSH_PORT,
      username: ssh.data.CIRRUS_SSH_USER,
      privateKeyPath: ssh.data.CIRRUS_SSH_KEY,
      hostKeyFingerprint: ssh.data.CIRRUS_SSH_HOST_FINGERPRINT,
    },
    capacityOverride,
    heartbeatMs: e.CIRRUS_HEARTBEAT_MS,
    orphanGraceMs: e.CIRRUS_ORPHAN_GRACE_MS,
    quarantineRetentionMs: e.CIRRUS_QUARANTINE_RETENTION_MS,
    stopTimeoutMs: e.CIRRUS_STOP_TIMEOUT_MS,
    fake: {
      capacity: { ...FAKE_DEFAULT_CAPACITY, ...capacityOverride },
      delayMs: e.CIRRUS_FAKE_DELAY_MS,
      failureRate: e.CIRRUS_FAKE_FAILURE_RATE,
    },
    network: {
      dir: e.CIRRUS_NETWORK_DIR,
      prefix: e.CIRRUS_NET_PREFIX,
      metadataPort: e.CIRRUS_METADATA_PORT,
      imdsV2Required: e.CIRRUS_IMDS_V2_REQUIRED === "true",
      outboundNat: e.CIRRUS_OUTBOUND_NAT === "off" ? undefined : e.CIRRUS_OUTBOUND_NAT,
      managementCidrs: e.CIRRUS_MANAGEMENT_CIDRS.split(",").map((c) => c.trim()).filter(Boolean).map((c) => parseCidr(c)!),
    },
    storage: {
      volumeDir: e.CIRRUS_VOLUME_STORE_DIR,
      snapshotDir: e.CIRRUS_SNAPSHOT_STORE_DIR,
      transferDir: e.CIRRUS_STORAGE_TRANSFER_DIR,
      detachWaitMs: e.CIRRUS_DETACH_WAIT_MS,
    },
  };
}

/** One line per issue: "NAME=<value as JSON>: expected …" ("NAME: expected …" when unset). */
function describeIssue(issue: z.ZodIssue, given: NodeJS.ProcessEnv): string {
  const name = String(issue.path[0]);
  const value = given[name];
  // zod words its enum message as a sentence; list the options like the other lines do.
  const expected = issue.code === "invalid_enum_value" ? issue.options.join(" | ") : issue.message;
  return `${name}${value === undefined ? "" : `=${JSON.stringify(value)}`}: expected ${expected}`;
}

function isHostPort(v: string): boolean {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}

/** "MS" or "MIN-MAX" with MIN <= MAX; undefined for anything else. */
function parseRange(v: string): { min: number; max: number } | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  if (!m) return undefined;
  const min = Number(m[1]);
  const max = Number(m[2] ?? m[1]);
  return min <= max ? { min, max } : undefined;
}
