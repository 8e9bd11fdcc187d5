// DHCP for each bridge: one dnsmasq bound to that bridge only, DNS off
// (--port=0), static leases only, from a hosts file of "mac,ip" lines that is
// rewritten when instances change and reloaded with SIGHUP. Its pid, lease,
// hosts and log files live in the agent's network directory on the host.
// dnsmasq runs detached from the agent, so guests keep their leases while
// the agent restarts.
import { posix } from "node:path";
import { readHostFile, removeHostFiles, signalHostProcess, writeHostFile } from "../runner/host-files.js";
import type { CommandRunner } from "../runner/types.js";
import { netmask } from "@cirrus/common";
import type { WantedBridge } from "./bridges.js";

export interface Lease {
  mac: string;
  ip: string;
}

/** How long a guest keeps a lease; it renews after half of it, so the agent being down briefly never matters. */
const LEASE_TIME = "12h";

/** Pure. The hosts file for these leases: one "mac,ip" line each, sorted, so equal sets give equal files. */
export function hostsFile(leases: readonly Lease[]): string {
  return leases.map((l) => `${l.mac},${l.ip}\n`).sort().join("");
}

/** Pure. dnsmasq's argv for one bridge. */
export function dnsmasqArgv(bridge: WantedBridge, files: DhcpFiles): string[] {
  return [
    "dnsmasq",
    "--conf-file=/dev/null",
    "--port=0",
    // With a single --interface and --bind-interfaces, dnsmasq binds its DHCP
    // socket to that device, so one dnsmasq per bridge can coexist.
    "--bind-interfaces",
    `--interface=${bridge.name}`,
    "--except-interface=lo",
    `--dhcp-range=${bridge.subnet.network},static,${netmask(bridge.subnet.prefix)},${LEASE_TIME}`,
    `--dhcp-hostsfile=${files.hosts}`,
    `--dhcp-option=option:router,${bridge.gatewayIp}`,
    "--dhcp-authoritative",
    `--dhcp-leasefile=${files.leases}`,
    `--pid-file=${files.pid}`,
    `--log-facility=${files.log}`,
  ];
}

export interface DhcpFiles {
  hosts: string;
  leases: string;
  pid: string;
  log: string;
}

export class DhcpServers {
  /** Hosts file content last written per bridge, to skip rewrites and reloads when nothing changed. */
  private readonly written = new Map<string, string>();

  constructor(
    private readonly runner: CommandRunner,
    private readonly dir: string,
  ) {}

  files(bridge: string): DhcpFiles {
    const at = (ext: string) => posix.join(this.dir, `${bridge}.${ext}`);
    return { hosts: at("hosts"), leases: at("leases"), pid: at("pid"), log: at("log") };
  }

  /**
   * Postcondition: a dnsmasq for `bridge` runs and answers exactly `leases`.
   * Starts it when it is not running (dead, killed, never started); reloads
   * it when the leases changed. Returns whether it had to be started.
   */
  async ensure(bridge: WantedBridge, leases: readonly Lease[]): Promise<boolean> {
    const files = this.files(bridge.name);
    const content = hostsFile(leases);
    const changed = this.written.get(bridge.name) !== content;
    if (changed) {
      await writeHostFile(this.runner, files.hosts, content);
      this.written.set(bridge.name, content);
    }
    const pid = await this.runningPid(bridge.name);
    // A dnsmasq that exited since its pid was read is started like a missing one.
    if (pid !== undefined && (!changed || (await signalHostProcess(this.runner, pid, "SIGHUP")))) return false;
    // dnsmasq daemonizes and its parent exits only once the child is
    // serving (or with the startup error), so success here means running.
    await this.runner.run(dnsmasqArgv(bridge, files));
    return true;
  }

  /** Postcondition: no dnsmasq for `bridge`, and none of its files. */
  async stop(bridge: string): Promise<void> {
    const pid = await this.runningPid(bridge);
    if (pid !== undefined) await signalHostProcess(this.runner, pid, "SIGTERM");
    const f = this.files(bridge);
    await removeHostFiles(this.runner, [f.hosts, f.leases, f.pid, f.log]);
    this.written.delete(bridge);
  }

  /**
   * The pid of the bridge's dnsmasq, when its pid file names a live process
   * that is that dnsmasq (checked by its command line, since pids are reused).
   */
  private async runningPid(bridge: string): Promise<number | undefined> {
    const text = await readHostFile(this.runner, this.files(bridge).pid);
    const pid = text?.trim();
    if (!pid || !/^[1-9][0-9]{0,9}$/.test(pid)) return undefined;
    const cmdline = await readHostFile(this.runner, `/proc/${pid}/cmdline`).catch(() => undefined);
    const argv = cmdline?.split("\0") ?? [];
    return posix.basename(argv[0] ?? "") === "dnsmasq" && argv.includes(`--interface=${bridge}`) ? Number(pid) : undefined;
  }
}
