// Parsers for the text that virsh and the host's tools print. Each is strict
// about what it accepts and says what it could not parse.
import { agent } from "@cirrus/proto";
import { isId } from "@cirrus/common";
import { XMLParser } from "fast-xml-parser";
import { INSTANCE_STORE_NAMES, type InstanceStoreName } from "../spec.js";

const { PowerState } = agent;

/** Domain names from `virsh list --name` (one per line, blank lines ignored). */
export function parseNameList(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

/** libvirt's virDomainState numbers (as `virsh domstats --state` prints them) and the words virsh uses for them. */
export const STATE_WORDS = ["no state", "running", "idle", "paused", "in shutdown", "shut off", "crashed", "pmsuspended"] as const;

/**
 * `virsh domstats --state` output → each domain's state word ("running",
 * "shut off"…), by name. Names come quoted on their own line and states as
 * numbers, so nothing depends on column layout or translation. Throws on
 * a block without a state and on an unknown state number.
 */
export function parseDomStats(stdout: string): Map<string, string> {
  const states = new Map<string, string>();
  let name: string | undefined;
  for (const raw of stdout.split("\n")) {
    const line = raw.trimEnd();
    const domain = /^Domain: '(.*)'$/.exec(line);
    if (domain) {
      if (name !== undefined) throw new Error(`virsh domstats: no state for domain ${JSON.stringify(name)}`);
      name = domain[1]!;
      continue;
    }
    const state = /^\s+state\.state=(\d+)$/.exec(line);
    if (state && name !== undefined) {
      const word = STATE_WORDS[Number(state[1])];
      if (!word) throw new Error(`virsh domstats: unknown state ${state[1]} of domain ${JSON.stringify(name)}`);
      states.set(name, word);
      name = undefined;
    }
  }
  if (name !== undefined) throw new Error(`virsh domstats: no state for domain ${JSON.stringify(name)}`);
  return states;
}

/** Maps a libvirt state name onto the agent protocol's power states. */
export function powerStateOf(state: string): agent.PowerState {
  switch (state) {
    case "running":
      return PowerState.POWER_STATE_RUNNING;
    case "shut off":
      return PowerState.POWER_STATE_SHUT_OFF;
    default:
      // paused, in shutdown, crashed, pmsuspended, blocked, idle, no state
      return PowerState.POWER_STATE_OTHER;
  }
}

/** The instance id behind a domain name, or undefined when the domain is not this agent's. */
export function instanceIdOf(domainName: string, prefix: string): string | undefined {
  if (!domainName.startsWith(prefix)) return undefined;
  const id = domainName.slice(prefix.length);
  return isId("i", id) ? id : undefined;
}

/**
 * The files an instance has in the instances directory, by what follows
 * "<prefix><instance id>.": its overlay, the overlay a create stages, its
 * console log, and each instance-store disk that may exist with its staged
 * blank (every possible name, so leftovers of any spec are found).
 */
export const ARTIFACT_SUFFIXES = ["qcow2", "staged.qcow2", "console.log", ...INSTANCE_STORE_NAMES.flatMap((n) => [instanceStoreSuffix(n), instanceStoreSuffix(n, "staged")])] as const;
export type ArtifactSuffix = (typeof ARTIFACT_SUFFIXES)[number];
const KNOWN_SUFFIXES: ReadonlySet<string> = new Set(ARTIFACT_SUFFIXES);
const ARTIFACT = /^(i-[0-9a-f]{17})\.(.+)$/;

/** The suffix of an instance-store disk's file, or (staged) of the blank one made to replace it. */
export function instanceStoreSuffix(name: InstanceStoreName, staged?: "staged"): `${InstanceStoreName}.raw` | `${InstanceStoreName}.staged.raw` {
  return staged ? `${name}.staged.raw` : `${name}.raw`;
}

/**
 * Instance ids with any of their files (ARTIFACT_SUFFIXES) among the file
 * names of an instances directory, counting only names that start with
 * this agent's prefix.
 */
export function parseArtifacts(names: string[], prefix: string): string[] {
  const ids = new Set<string>();
  for (const n of names) {
    const m = n.startsWith(prefix) ? ARTIFACT.exec(n.slice(prefix.length)) : null;
    if (m && KNOWN_SUFFIXES.has(m[2]!)) ids.add(m[1]!);
  }
  return [...ids].sort();
}

/** A quarantined file's name: the instance's file name with the time (ms) it was quarantined before its suffix. */
export function quarantineName(prefix: string, instanceId: string, at: number, suffix: ArtifactSuffix): string {
  return `${prefix}${instanceId}.${at}.${suffix}`;
}

const QUARANTINED = /^(i-[0-9a-f]{17})\.(\d{1,15})\.(.+)$/;

/** The quarantined files of this agent (by prefix) among the names of the quarantine directory, with when each was quarantined. */
export function parseQuarantined(names: string[], prefix: string): Array<{ name: string; instanceId: string; at: number }> {
  return names.flatMap((name) => {
    const m = name.startsWith(prefix) ? QUARANTINED.exec(name.slice(prefix.length)) : null;
    return m && KNOWN_SUFFIXES.has(m[3]!) ? [{ name, instanceId: m[1]!, at: Number(m[2]) }] : [];
  });
}

function positiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`cannot parse ${what} from ${JSON.stringify(text.slice(0, 100))}`);
  return n;
}

/** `nproc` output → number of CPUs. */
export function parseNproc(stdout: string): number {
  return positiveInt(stdout.trim(), "CPU count");
}

/** /proc/meminfo → MemTotal in MiB. */
export function parseMemTotalMib(meminfo: string): number {
  const m = /^MemTotal:\s+(\d+)\s+kB\s*$/m.exec(meminfo);
  if (!m) throw new Error("no MemTotal line in /proc/meminfo");
  return Math.floor(positiveInt(m[1]!, "MemTotal") / 1024);
}

/** `df -k --output=size -- DIR` → the size of DIR's filesystem in GiB. */
export function parseDfSizeGib(stdout: string): number {
  // A header line ("1K-blocks"), then the size alone: nothing else to mis-split.
  const lines = stdout.trim().split("\n");
  if (lines.length !== 2) throw new Error(`cannot parse df output: ${JSON.stringify(stdout.slice(0, 200))}`);
  return Math.floor(positiveInt(lines[1]!.trim(), "filesystem size") / (1024 * 1024));
}

/** `qemu-img info --output=json` → the image's format and virtual size in bytes. */
export function parseImageInfo(stdout: string): { format: string; virtualSize: number } {
  const info = JSON.parse(stdout) as { format?: unknown; "virtual-size"?: unknown };
  if (typeof info.format !== "string" || typeof info["virtual-size"] !== "number") throw new Error("qemu-img info: missing format or virtual-size");
  return { format: info.format, virtualSize: info["virtual-size"] };
}

/** `virsh domblkinfo <domain> <target>` → the disk's capacity in bytes: the size the guest sees. */
export function parseBlockCapacity(stdout: string): number {
  const m = /^Capacity:\s+(\d+)\s*$/m.exec(stdout);
  if (!m) throw new Error(`no Capacity line in virsh domblkinfo output: ${JSON.stringify(stdout.slice(0, 200))}`);
  return positiveInt(m[1]!, "disk capacity");
}

/** A bridge NIC of a domain, as its XML describes it. */
export interface DomainInterface {
  mac: string;
  bridge: string;
  /** The tap device's name (`<target dev>`); undefined: libvirt names it. */
  tap?: string;
  model?: string;
  /** domain/bus/slot/function of a PCI address; undefined: none given. */
  pciAddress?: Record<string, string>;
}

const xmlParser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@_", parseTagValue: false, parseAttributeValue: false, isArray: (name) => name === "interface" || name === "disk" });
const PCI_FIELDS = ["domain", "bus", "slot", "function"] as const;
const HEX = /^0x[0-9a-fA-F]{1,8}$/;

type XmlNode = Record<string, unknown>;
const attr = (node: unknown, name: string): string | undefined => {
  const v = node && typeof node === "object" ? (node as XmlNode)[`@_${name}`] : undefined;
  return typeof v === "string" ? v : undefined;
};

/**
 * The `<interface type='bridge'>` devices of `virsh dumpxml` output (live or
 * --inactive), in document order. Interfaces of other types are skipped;
 * throws when the text is not a domain.
 */
export function parseDomainInterfaces(xml: string): DomainInterface[] {
  const doc = xmlParser.parse(xml) as { domain?: { devices?: { interface?: XmlNode[] } } };
  if (!doc.domain) throw new Error("not a libvirt domain XML document");
  const out: DomainInterface[] = [];
  for (const i of doc.domain.devices?.interface ?? []) {
    const mac = attr(i.mac, "address");
    const bridge = attr(i.source, "bridge");
    if (attr(i, "type") !== "bridge" || !mac || !bridge) continue;
    let pciAddress: Record<string, string> | undefined;
    if (attr(i.address, "type") === "pci") {
      const fields = PCI_FIELDS.map((f) => [f, attr(i.address, f)] as const);
      if (fields.every(([, v]) => v !== undefined && HEX.test(v))) pciAddress = Object.fromEntries(fields) as Record<string, string>;
    }
    out.push({ mac: mac.toLowerCase(), bridge, tap: attr(i.target, "dev"), model: attr(i.model, "type"), pciAddress });
  }
  return out;
}

/** A file-backed disk of a domain, as its XML describes it. */
export interface DomainDisk {
  /** vda, vdb, … */
  target: string;
  /** The file QEMU writes. */
  source: string;
  /** `<serial>`; undefined: none. */
  serial?: string;
  /** The first `<backingStore>` file, when the XML names one (the live XML always does for a chain; a persistent one only after an external snapshot). */
  backing?: string;
  /** `<iotune>`, each limit 0 when not given. */
  qos: agent.VolumeQos;
}

const count = (node: unknown, name: string): number => {
  const v = node && typeof node === "object" ? (node as XmlNode)[name] : undefined;
  return typeof v === "string" && /^\d{1,15}$/.test(v) ? Number(v) : 0;
};

/** The `<disk type='file'>` devices of `virsh dumpxml` output (live or --inactive), in document order; throws when the text is not a domain. */
export function parseDomainDisks(xml: string): DomainDisk[] {
  const doc = xmlParser.parse(xml) as { domain?: { devices?: { disk?: XmlNode[] } } };
  if (!doc.domain) throw new Error("not a libvirt domain XML document");
  const out: DomainDisk[] = [];
  for (const d of doc.domain.devices?.disk ?? []) {
    const target = attr(d.target, "dev");
    const source = attr(d.source, "file");
    if (attr(d, "type") !== "file" || !target || !source) continue;
    const serial = typeof d.serial === "string" ? d.serial : undefined;
    const backing = attr((d.backingStore as XmlNode | undefined)?.source, "file");
    const t = d.iotune;
    const qos = { totalIopsSec: count(t, "total_iops_sec"), totalBytesSec: count(t, "total_bytes_sec"), totalIopsSecMax: count(t, "total_iops_sec_max"), totalIopsSecMaxLength: count(t, "total_iops_sec_max_length") };
    out.push({ target, source, serial, backing, qos });
  }
  return out;
}
