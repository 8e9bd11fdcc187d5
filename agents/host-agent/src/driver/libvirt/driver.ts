// The libvirt driver: persistent domains over qcow2 overlays on the image's
// root disk, all driven through a CommandRunner (local execFile or SSH).
import { posix } from "node:path";
import type { Logger } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import type { InstanceNetworking } from "../../network/types.js";
import { CommandError, type CommandRunner } from "../../runner/types.js";
import { checkInstanceId, validateSpec, type ValidSpec } from "../spec.js";
import { CONSOLE_TAIL_BYTES, DriverError, type Capacity, type DomainStatus, type HypervisorDriver, type InstanceSpec, type StopOptions } from "../types.js";
import { buildDomainXml, domainUuid, type DomainDefinition } from "./domain-xml.js";
import { instanceIdOf, parseArtifacts, parseDfSizeGib, parseImageInfo, parseMemTotalMib, parseNameList, parseNproc } from "./parse.js";
import { Virsh, type DomainState } from "./virsh.js";

const { PowerState } = agent;
const GIB = 1024 ** 3;
const STOP_POLL_MS = 250;

export interface LibvirtDriverOptions {
  runner: CommandRunner;
  /** libvirt connection URI as seen from the runner's host, e.g. qemu:///system. */
  uri: string;
  hypervisor: "kvm" | "qemu";
  /** Prefix of every domain name this agent owns; domains without it are never touched. */
  domainPrefix: string;
  /** Where overlays and console logs live; QEMU's user must be able to traverse it. */
  instancesDir: string;
  /** Bridges, DHCP and firewall for instances with a NIC; undefined: a spec with a NIC is refused. */
  network?: InstanceNetworking;
  log: Logger;
}

export class LibvirtDriver implements HypervisorDriver {
  readonly kind: "kvm" | "qemu";
  private readonly virsh: Virsh;
  private readonly runner: CommandRunner;
  private dirReady: Promise<void> | undefined;

  constructor(private readonly opts: LibvirtDriverOptions) {
    this.kind = opts.hypervisor;
    this.runner = opts.runner;
    this.virsh = new Virsh(opts.runner, opts.uri);
  }

  async capacity(): Promise<Capacity> {
    await this.ensureInstancesDir();
    const [nproc, meminfo, df] = await Promise.all([
      this.runner.run(["nproc"]),
      this.runner.run(["cat", "/proc/meminfo"]),
      this.runner.run(["df", "-k", "--output=size", "--", this.opts.instancesDir]),
    ]);
    return {
      vcpus: parseNproc(nproc.stdout.toString("utf8")),
      memoryMib: parseMemTotalMib(meminfo.stdout.toString("utf8")),
      diskGib: parseDfSizeGib(df.stdout.toString("utf8")),
    };
  }

  async createInstance(input: InstanceSpec): Promise<agent.PowerState> {
    const spec = validateSpec(input);
    const name = this.domainName(spec.instanceId);
    const current = await this.virsh.state(name);
    if (current.power !== PowerState.POWER_STATE_ABSENT) {
      // libvirt cannot start a domain whose bridge is missing.
      await this.attachNic(spec);
      return this.ensureRunning(spec.instanceId, current);
    }

    const overlay = this.overlayPath(spec.instanceId);
    const consoleLog = this.consoleLogPath(spec.instanceId);
    await this.checkImage(spec);
    await this.ensureInstancesDir();
    try {
      // No domain exists, so any overlay or log here is left over from an
      // interrupted attempt: start from scratch rather than trust it.
      await this.runner.run(["rm", "-f", "--", overlay, consoleLog]);
      await this.runner.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", spec.image.rootPath, overlay, `${spec.rootDiskGib}G`]);
      const nic = await this.attachNic(spec);
      const xml = buildDomainXml({
        name,
        uuid: domainUuid(name),
        hypervisor: this.kind,
        vcpus: spec.vcpus,
        memoryMib: spec.memoryMib,
        serial: spec.instanceId,
        kernel: spec.image.kernelPath
          ? { path: spec.image.kernelPath, initrdPath: spec.image.ramdiskPath, cmdline: spec.image.kernelCmdline }
          : undefined,
        rootDiskPath: overlay,
        consoleLogPath: consoleLog,
        nic,
      });
      // Persistent domain: a stopped instance keeps its definition and disk.
      await this.define(xml);
      await this.virsh.run(["start", "--", name]);
    } catch (err) {
      this.opts.log.warn({ instanceId: spec.instanceId, err: String(err) }, "create failed; removing what it made");
      await this.remove(spec.instanceId).catch((cleanupErr: unknown) =>
        this.opts.log.error({ instanceId: spec.instanceId, err: String(cleanupErr) }, "cleanup after failed create failed; reconcile will retry"),
      );
      throw err;
    }
    return PowerState.POWER_STATE_RUNNING;
  }

  async startInstance(instanceId: string): Promise<agent.PowerState> {
    const { s } = await this.existing(instanceId);
    return this.ensureRunning(instanceId, s);
  }

  async stopInstance(instanceId: string, { force, timeoutMs }: StopOptions): Promise<agent.PowerState> {
    const name = this.domainName(instanceId);
    const s = await this.virsh.state(name);
    if (s.power === PowerState.POWER_STATE_ABSENT || s.power === PowerState.POWER_STATE_SHUT_OFF) return s.power;
    const off = (x: DomainState) => x.power === PowerState.POWER_STATE_SHUT_OFF;
    if (!force) {
      await this.virsh.change(["shutdown", "--", name], off, name);
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (off(await this.virsh.state(name))) return PowerState.POWER_STATE_SHUT_OFF;
        await sleep(Math.min(STOP_POLL_MS, Math.max(0, deadline - Date.now())));
      }
      this.opts.log.info({ instanceId, timeoutMs }, "guest did not shut down in time; powering it off");
    }
    await this.virsh.change(["destroy", "--", name], off, name);
    return PowerState.POWER_STATE_SHUT_OFF;
  }

  async rebootInstance(instanceId: string): Promise<agent.PowerState> {
    const { name, s } = await this.existing(instanceId);
    if (s.power !== PowerState.POWER_STATE_RUNNING) return this.ensureRunning(instanceId, s);
    await this.virsh.run(["reset", "--", name]);
    return PowerState.POWER_STATE_RUNNING;
  }

  async destroyInstance(instanceId: string): Promise<agent.PowerState> {
    await this.remove(checkInstanceId(instanceId));
    return PowerState.POWER_STATE_ABSENT;
  }

  async consoleOutput(instanceId: string): Promise<Buffer> {
    const log = this.consoleLogPath(checkInstanceId(instanceId));
    if ((await this.runner.run(["test", "-f", log], { okCodes: [0, 1] })).code !== 0) return Buffer.alloc(0);
    return (await this.runner.run(["tail", "-c", String(CONSOLE_TAIL_BYTES), "--", log])).stdout;
  }

  async list(): Promise<DomainStatus[]> {
    const [all, running, shutOff] = await Promise.all([
      this.virsh.names("--all"),
      this.virsh.names("--state-running"),
      this.virsh.names("--state-shutoff"),
    ]);
    const out: DomainStatus[] = [];
    for (const name of all) {
      const instanceId = instanceIdOf(name, this.opts.domainPrefix);
      if (!instanceId) continue;
      // The three listings are separate snapshots; a domain changing state
      // between them shows as OTHER ("in transition"), which is the truth.
      const powerState = running.includes(name)
        ? PowerState.POWER_STATE_RUNNING
        : shutOff.includes(name)
          ? PowerState.POWER_STATE_SHUT_OFF
          : PowerState.POWER_STATE_OTHER;
      out.push({ instanceId, powerState });
    }
    return out;
  }

  async listArtifacts(): Promise<string[]> {
    await this.ensureInstancesDir();
    const ls = await this.runner.run(["ls", "-A1", "--", this.opts.instancesDir]);
    return parseArtifacts(parseNameList(ls.stdout.toString("utf8")));
  }

  close(): Promise<void> {
    return this.runner.close();
  }

  /**
   * `virsh define` needs a file it can open: /dev/stdin fails locally, since
   * Node gives a child a socket (not a pipe) as stdin and open(2) of a socket
   * is ENXIO. So the XML goes through a temporary file on the host.
   */
  private async define(xml: string): Promise<void> {
    const tmp = (await this.runner.run(["mktemp", "--suffix=.xml", "/tmp/cirrus-domain.XXXXXXXX"])).stdout.toString("utf8").trim();
    try {
      await this.runner.run(["tee", "--", tmp], { input: xml });
      await this.virsh.run(["define", "--", tmp]);
    } finally {
      await this.runner.run(["rm", "-f", "--", tmp]).catch(() => undefined);
    }
  }

  /** Domain (stopped first, then undefined), overlay, console log and the NIC's host side all gone. */
  private async remove(instanceId: string): Promise<void> {
    const name = this.domainName(instanceId);
    const s = await this.virsh.state(name);
    if (s.power !== PowerState.POWER_STATE_ABSENT) {
      if (s.power !== PowerState.POWER_STATE_SHUT_OFF) {
        await this.virsh.change(["destroy", "--", name], (x) => x.power === PowerState.POWER_STATE_SHUT_OFF || x.power === PowerState.POWER_STATE_ABSENT, name);
      }
      await this.virsh.change(["undefine", "--", name], (x) => x.power === PowerState.POWER_STATE_ABSENT, name);
    }
    await this.runner.run(["rm", "-f", "--", this.overlayPath(instanceId), this.consoleLogPath(instanceId)]);
    await this.opts.network?.detach(instanceId);
  }

  /** Readies the host side of the spec's NIC (bridge, DHCP, firewall); undefined for an instance without one. */
  private async attachNic(spec: ValidSpec): Promise<DomainDefinition["nic"]> {
    if (!spec.network) return undefined;
    if (!this.opts.network) throw new DriverError("InvalidSpec", "this host agent has no networking configured; cannot give the instance a NIC");
    return { ...(await this.opts.network.attach(spec.instanceId, spec.network)), mac: spec.network.mac };
  }

  /** The instance's domain name and state; throws NotFound when it has no domain. */
  private async existing(instanceId: string): Promise<{ name: string; s: DomainState }> {
    const name = this.domainName(instanceId);
    const s = await this.virsh.state(name);
    if (s.power === PowerState.POWER_STATE_ABSENT) throw new DriverError("NotFound", `no domain for ${instanceId}`);
    return { name, s };
  }

  private async ensureRunning(instanceId: string, s: DomainState): Promise<agent.PowerState> {
    const name = this.domainName(instanceId);
    const running = (x: DomainState) => x.power === PowerState.POWER_STATE_RUNNING;
    switch (s.state) {
      case "running":
        return PowerState.POWER_STATE_RUNNING;
      case "shut off":
      case "crashed":
        // The bridge may be gone (host rebooted, removed while the instance was stopped).
        await this.opts.network?.prepare(instanceId);
        await this.virsh.change(["start", "--", name], running, name);
        return PowerState.POWER_STATE_RUNNING;
      case "paused":
        await this.virsh.change(["resume", "--", name], running, name);
        return PowerState.POWER_STATE_RUNNING;
      default:
        // "in shutdown" and friends settle by themselves; the caller retries.
        throw new Error(`domain ${name} is ${s.state}; retry when it settles`);
    }
  }

  /** Throws InvalidImage unless every image file exists and the root disk is a usable qcow2 image. */
  private async checkImage(spec: ValidSpec): Promise<void> {
    const { rootPath, kernelPath, ramdiskPath } = spec.image;
    for (const [what, path] of [["kernel", kernelPath], ["ramdisk", ramdiskPath], ["root disk", rootPath]] as const) {
      if (path && (await this.runner.run(["test", "-f", path], { okCodes: [0, 1] })).code !== 0) {
        throw new DriverError("InvalidImage", `${what} ${path} of image ${spec.image.imageId} is not on this host`);
      }
    }
    let info: { format: string; virtualSize: number };
    try {
      // --force-share: running instances hold the image open read-only.
      const r = await this.runner.run(["qemu-img", "info", "--force-share", "-f", "qcow2", "--output=json", "--", rootPath]);
      info = parseImageInfo(r.stdout.toString("utf8"));
    } catch (err) {
      if (!(err instanceof CommandError) || err.timedOut) throw err;
      throw new DriverError("InvalidImage", `root disk ${rootPath} of image ${spec.image.imageId} is not a usable qcow2 image: ${err.stderr.trim().slice(0, 300)}`);
    }
    if (info.virtualSize > spec.rootDiskGib * GIB) {
      throw new DriverError("InvalidSpec", `rootDiskGib ${spec.rootDiskGib} is smaller than image ${spec.image.imageId} (${Math.ceil(info.virtualSize / GIB)} GiB)`);
    }
  }

  private ensureInstancesDir(): Promise<void> {
    this.dirReady ??= this.runner.run(["mkdir", "-p", "--", this.opts.instancesDir]).then(
      () => undefined,
      (err: unknown) => {
        this.dirReady = undefined;
        throw err;
      },
    );
    return this.dirReady;
  }

  private domainName(instanceId: string): string {
    return this.opts.domainPrefix + checkInstanceId(instanceId);
  }

  private overlayPath(instanceId: string): string {
    return posix.join(this.opts.instancesDir, `${instanceId}.qcow2`);
  }

  private consoleLogPath(instanceId: string): string {
    return posix.join(this.opts.instancesDir, `${instanceId}.console.log`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
