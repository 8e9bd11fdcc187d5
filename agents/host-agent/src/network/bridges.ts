// Linux bridges, one per subnet, and the kernel switches routing and
// bridge filtering need. A bridge is marked as ours by its alias
// ("cirrus:<prefix>:<subnet-id>"), which also records its subnet, so a
// restarted agent finds (and can remove) the bridges an earlier run made.
import { hostPathExists, readHostFile } from "../runner/host-files.js";
import type { CommandRunner } from "../runner/types.js";
import type { Cidr } from "@cirrus/common";
import { BRIDGE_NAME } from "./names.js";

export interface HostBridge {
  name: string;
  /** The subnet id from the alias; undefined for a bridge with our name pattern but no alias. */
  subnetId?: string;
  /** Whether the alias says another agent (another prefix) owns it. */
  foreign: boolean;
  /** IPv4 addresses as "ip/prefix". */
  addresses: string[];
  up: boolean;
}

export interface WantedBridge {
  name: string;
  subnetId: string;
  subnet: Cidr;
  gatewayIp: string;
}

interface IpAddrJson {
  ifname?: string;
  ifalias?: string;
  flags?: string[];
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }>;
}

const BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables";

function aliasOf(prefix: string, subnetId: string): string {
  return `cirrus:${prefix}:${subnetId}`;
}

/** Pure. The bridges named like ours in `ip -j -d addr show type bridge` output. */
export function parseBridges(json: string, prefix: string): HostBridge[] {
  const own = new RegExp(`^cirrus:${prefix}:(subnet-[0-9a-f]{17})$`);
  return (JSON.parse(json || "[]") as IpAddrJson[])
    .filter((l) => typeof l.ifname === "string" && BRIDGE_NAME.test(l.ifname))
    .map((l) => {
      const m = own.exec(l.ifalias ?? "");
      return {
        name: l.ifname!,
        subnetId: m?.[1],
        foreign: !m && Boolean(l.ifalias),
        addresses: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
        up: (l.flags ?? []).includes("UP"),
      };
    });
}

export async function listBridges(runner: CommandRunner, prefix: string): Promise<HostBridge[]> {
  const r = await runner.run(["ip", "-j", "-d", "addr", "show", "type", "bridge"]);
  return parseBridges(r.stdout.toString("utf8"), prefix);
}

/**
 * Postcondition: bridge `b.name` exists, is marked ours, has IPv6 off (so
 * guests cannot reach the host over link-local IPv6, which our IPv4 rules
 * would not see), holds gatewayIp/prefix and is up. Does only the steps
 * `current` shows missing. Throws when another agent owns a bridge of that name.
 */
export async function ensureBridge(runner: CommandRunner, prefix: string, b: WantedBridge, current: HostBridge | undefined): Promise<void> {
  if (current?.foreign) throw new Error(`bridge ${b.name} belongs to another agent; not touching it`);
  const address = `${b.gatewayIp}/${b.subnet.prefix}`;
  if (!current) {
    // STP off: a bridge of taps has no loops, and STP would hold new ports back for 30 s.
    await runner.run(["ip", "link", "add", "name", b.name, "type", "bridge", "stp_state", "0"]);
  }
  if (current?.subnetId !== b.subnetId) {
    await runner.run(["ip", "link", "set", "dev", b.name, "alias", aliasOf(prefix, b.subnetId)]);
    // Exit code 255: IPv6 is disabled on this host altogether, which is what we want anyway.
    await runner.run(["sysctl", "-q", "-w", `net.ipv6.conf.${b.name}.disable_ipv6=1`], { okCodes: [0, 255] });
  }
  if (!current?.addresses.includes(address)) await runner.run(["ip", "addr", "replace", address, "dev", b.name]);
  if (!current?.up) await runner.run(["ip", "link", "set", "dev", b.name, "up"]);
}

/** Postcondition: no bridge of that name. Its ports are detached by the kernel. */
export async function removeBridge(runner: CommandRunner, name: string): Promise<void> {
  const r = await runner.run(["ip", "link", "del", "dev", name], { okCodes: [0, 1] });
  if (r.code !== 0 && (await runner.run(["ip", "link", "show", "dev", name], { okCodes: [0, 1] })).code === 0) throw new Error(`cannot remove bridge ${name}: ${r.stderr.trim()}`);
}

/**
 * Postcondition: the host routes IPv4 (net.ipv4.ip_forward=1) and passes
 * bridged IPv4 through iptables (br_netfilter loaded,
 * net.bridge.bridge-nf-call-iptables=1), without which `-m physdev` rules
 * never see guest-to-guest traffic.
 */
export async function ensureKernelSwitches(runner: CommandRunner): Promise<void> {
  if (!(await hostPathExists(runner, BRIDGE_NF))) await runner.run(["modprobe", "br_netfilter"]);
  const keys = ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"];
  // Read in-process where the runner can (/proc/sys is what sysctl -n reads), else with one sysctl.
  const values = runner.files
    ? await Promise.all(keys.map(async (k) => (await readHostFile(runner, `/proc/sys/${k.replaceAll(".", "/")}`)) ?? ""))
    : (await runner.run(["sysctl", "-n", ...keys])).stdout.toString("utf8").split("\n");
  if (keys.some((_, i) => values[i]?.trim() !== "1")) await runner.run(["sysctl", "-q", "-w", ...keys.map((k) => `${k}=1`)]);
}

/** A network interface as far as bridge membership goes. */
export interface HostLink {
  /** The bridge (or other master) it is enslaved to; undefined: none. */
  master?: string;
  /** Administratively up. */
  up: boolean;
}

interface IpLinkJson {
  ifname?: string;
  master?: string;
  flags?: string[];
}

/** Pure. Every interface in `ip -j link show` output, by name. */
export function parseLinks(json: string): Map<string, HostLink> {
  const links = new Map<string, HostLink>();
  for (const l of JSON.parse(json || "[]") as IpLinkJson[]) {
    if (typeof l.ifname !== "string") continue;
    links.set(l.ifname, { master: typeof l.master === "string" ? l.master : undefined, up: (l.flags ?? []).includes("UP") });
  }
  return links;
}

/** Every interface on the host, by name (one command, whatever their number). */
export async function listLinks(runner: CommandRunner): Promise<Map<string, HostLink>> {
  return parseLinks((await runner.run(["ip", "-j", "link", "show"])).stdout.toString("utf8"));
}

/** Postcondition: `tap`, which exists, is up and a port of `bridge`. Throws when it has gone. */
export async function enslave(runner: CommandRunner, tap: string, bridge: string): Promise<void> {
  await runner.run(["ip", "link", "set", "dev", tap, "master", bridge, "up"]);
}
