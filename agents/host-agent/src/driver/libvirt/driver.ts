// The libvirt driver: persistent domains over qcow2 overlays on the image's
// root disk, all driven through a CommandRunner (local execFile or SSH).
import { existsSync } from "node:fs";
import { posix } from "node:path";
import { imagePathRefusal, type Logger } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { enslave, listLinks, type HostLink } from "../../network/bridges.js";
import { tapName } from "../../network/names.js";
import type { InstanceNetworking } from "../../network/types.js";
import { hostFileIdentities, hostFileSizes, hostPathExists, makeSparseHostFile, moveHostFile, removeHostFiles, resolveHostPaths, setHostFileMode, withHostTempFile } from "../../runner/host-files.js";
import { currentTrace, traced, traceScope, type CommandTrace } from "../../runner/trace.js";
import { CommandError, type CommandRunner } from "../../runner/types.js";
import type { DiskSource } from "../../storage/types.js";
import { checkInstanceId, checkVolumeId, INSTANCE_STORE_NAMES, validateAttachment, validateModification, validateSpec, type InstanceStoreName, type ValidInstanceStoreDisk, type ValidSpec } from "../spec.js";
import { CONSOLE_TAIL_BYTES, DriverError, type Capacity, type DetachOptions, type DomainStatus, type HypervisorDriver, type InstanceSpec, type InterfaceRepair, type LiveSnapshotVolume, type StopOptions, type VolumeAttachment, type VolumeModification } from "../types.js";
import { buildDomainXml, buildInterfaceXml, domainUuid, type DomainDefinition, type InterfaceDefinition, type VolumeDiskDefinition } from "./domain-xml.js";
import { ARTIFACT_SUFFIXES, instanceIdOf, instanceStoreSuffix, parseArtifacts, parseDfSizeGib, parseQuarantined, quarantineName, type ArtifactSuffix, parseDomainInterfaces, parseImageInfo, parseMemTotalMib, parseNameList, parseNproc, powerStateOf } from "./parse.js";
import { LibvirtRpc } from "./rpc.js";
import { Virsh, type DomainState } from "./virsh.js";
import { VolumeDevices, type VolumeDomain } from "./volumes.js";

const { PowerState } = agent;
const GIB = 1024 ** 3;
const STOP_POLL_MS = 250;
/**
 * How long a guest gets to release a hot-unplugged NIC beyond the 5 s virsh
 * itself waits (a Linux guest takes about a second under TCG); a guest that
 * takes longer is checked again in the next reconcile round.
 */
const UNPLUG_WAIT_MS = 10_000;
const UNPLUG_POLL_MS = 100;
/** Root disks whose qemu-img info is remembered (see checkImage). */
const IMAGE_CACHE_ENTRIES = 64;

/**
 * The socket of the daemon serving `uri` on this machine, as libvirt's
 * client finds it for qemu:///system: the modular daemon's if it runs, else
 * the monolithic libvirtd's; undefined for other URIs or without either.
 */
function localDaemonSocket(uri: string): string | undefined {
  if (uri !== "qemu:///system") return undefined;
  return ["/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock"].find((p) => existsSync(p));
}

/** A tap that works: present, up, and a port of its bridge. */
function tapHealthy(link: HostLink | undefined, bridge: string): boolean {
  return link !== undefined && link.up && link.master === bridge;
}

export interface LibvirtDriverOptions {
  runner: CommandRunner;
  /** libvirt connection URI as seen from the runner's host, e.g. qemu:///system. */
  uri: string;
  hypervisor: "kvm" | "qemu";
  /** Prefix of every domain name this agent owns; domains without it are never touched. */
  domainPrefix: string;
  /** Where overlays and console logs live; QEMU's user must be able to traverse it. */
  instancesDir: string;
  /** The only directories image files may come from, symlinks followed (CIRRUS_IMAGE_DIRS). */
  imageDirs: readonly string[];
  /** Directories never used as images even below an image directory (the agent's state); the instances directory always is one. */
  privateDirs: readonly string[];
  /** Bridges, DHCP and firewall for instances with a NIC; undefined: a spec with a NIC is refused. */
  network?: InstanceNetworking;
  log: Logger;
}

export class LibvirtDriver implements HypervisorDriver {
  readonly kind: "kvm" | "qemu";
  private readonly virsh: Virsh;
  private readonly volumes: VolumeDevices;
  /** The persistent connection to a local libvirt daemon; undefined: virsh only (SSH, other URIs). */
  private readonly rpc: LibvirtRpc | undefined;
  private readonly runner: CommandRunner;
  private dirReady: Promise<void> | undefined;
  private dirsResolved: Promise<{ imageDirs: string[]; privateDirs: string[] }> | undefined;
  /** Virtual size of each root disk checked, with the identity of the file it was read from. */
  private readonly imageSizes = new Map<string, { identity: string; virtualSize: number }>();

  constructor(private readonly opts: LibvirtDriverOptions) {
    this.kind = opts.hypervisor;
    this.runner = opts.runner;
    const socketPath = opts.runner.target === "local" ? localDaemonSocket(opts.uri) : undefined;
    this.rpc = socketPath === undefined ? undefined : new LibvirtRpc({ socketPath, uri: opts.uri });
    let fallbacks = 0;
    this.virsh = new Virsh(opts.runner, opts.uri, this.rpc, (err) => {
      // The first, then every hundredth: visible without flooding.
      if (fallbacks++ % 100 === 0) opts.log.warn({ socketPath, err: err.message, fallbacks }, "libvirt RPC connection unusable; using virsh");
    });
    this.volumes = new VolumeDevices(this.virsh, this.runner, opts.log);
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

  async createInstance(input: InstanceSpec, volumes: ReadonlyMap<string, DiskSource> = new Map()): Promise<agent.PowerState> {
    const { trace, result } = await traced(() => this.create(input, volumes));
    this.logTrace("createInstance", input.instanceId, trace, result);
    if (result.status === "rejected") throw result.reason;
    return result.value;
  }

  private async create(input: InstanceSpec, volumeFiles: ReadonlyMap<string, DiskSource>): Promise<agent.PowerState> {
    phase("state");
    const spec = validateSpec(input);
    const volumes = volumeDisks(spec, volumeFiles);
    const name = this.domainName(spec.instanceId);
    // Four things start at once, since none needs another's result:
    //  - the domain's state (which decides what happens next);
    //  - the NIC's host side (bridge, DHCP, firewall), needed whatever the
    //    state (libvirt cannot start a domain whose bridge is missing);
    //  - for a launch, a new overlay, made under a staging name that no domain
    //    uses, so making it can never touch the disk of a domain that turns
    //    out to exist (a start never makes one: its disk is the instance's data);
    //  - blank instance-store disks under staging names likewise: all of them
    //    for a launch, the missing ones for a start.
    // Settled: each failure is acted on where its result is awaited.
    // Started in order of how long each takes, longest first.
    const instanceStore = this.instanceStoreOf(spec);
    const stagedScratch = instanceStore.map((f) => f.staged);
    const state = settled(this.virsh.state(name));
    const staged = this.stagedOverlayPath(spec.instanceId);
    const imageReady = settled(spec.reuseRootDisk ? this.checkImage(spec) : this.makeOverlay(spec, staged));
    const scratch = settled(this.stageInstanceStore(spec, instanceStore));
    const attached = settled(traceScope("network", () => this.attachNic(spec)));
    let current: DomainState;
    try {
      current = await unwrap(state);
    } catch (err) {
      // Whether a domain exists is unknown, so only the staged files are
      // undone: a NIC registered for an instance the control plane asked for
      // is what a retry registers anyway, and is pruned once unwanted.
      await Promise.all([attached, imageReady, scratch]);
      await removeHostFiles(this.runner, [staged, ...stagedScratch]).catch(() => undefined);
      throw err;
    }
    if (current.power !== PowerState.POWER_STATE_ABSENT) {
      // The domain keeps its own disks; the staged overlay was not needed,
      // and a staged scratch disk only where the domain's is missing (it
      // would not start without it).
      await imageReady;
      await removeHostFiles(this.runner, [staged]);
      await this.placeInstanceStore(await unwrap(scratch), { replace: false });
      // A start of a shut-off domain begins with blank scratch disks even
      // when no StopInstance wiped them (the guest powered itself off).
      if (spec.reuseRootDisk && current.power === PowerState.POWER_STATE_SHUT_OFF) await this.wipeInstanceStore(spec.instanceId);
      await unwrap(attached);
      return this.ensureRunning(spec.instanceId, current, { networkReady: true });
    }

    const overlay = this.overlayPath(spec.instanceId);
    const consoleLog = this.consoleLogPath(spec.instanceId);
    try {
      phase("overlay");
      const image = await unwrap(imageReady);
      if (spec.reuseRootDisk) {
        // The domain went missing (undefined by hand, libvirt's state lost)
        // while the instance was stopped: its disk is its data, so the
        // domain is defined over it again, console log kept, or not at all.
        if ((await hostFileIdentities(this.runner, [overlay]))[0] === undefined) {
          throw new DriverError("MissingDisk", `the root disk ${overlay} of ${spec.instanceId} is not on this host; the instance cannot start without its data`);
        }
      } else {
        // No domain exists, so any overlay or log here is left over from an
        // interrupted launch: start from scratch rather than trust it (the
        // rename replaces a leftover overlay atomically).
        await removeHostFiles(this.runner, [consoleLog]);
        await moveHostFile(this.runner, staged, overlay);
      }
      // A launch's instance store is blank, replacing any leftover; a start's
      // is blank too: the missing disks made so, those still there wiped.
      await this.placeInstanceStore(await unwrap(scratch), { replace: !spec.reuseRootDisk });
      if (spec.reuseRootDisk) await this.wipeInstanceStore(spec.instanceId);
      phase("network");
      const nic = await unwrap(attached);
      const xml = buildDomainXml({
        name,
        uuid: domainUuid(name),
        hypervisor: this.kind,
        vcpus: spec.vcpus,
        memoryMib: spec.memoryMib,
        serial: spec.instanceId,
        kernel: image.kernelPath
          ? { path: image.kernelPath, initrdPath: image.ramdiskPath, cmdline: spec.image.kernelCmdline }
          : undefined,
        rootDiskPath: overlay,
        consoleLogPath: consoleLog,
        nic,
        volumes,
        instanceStore: instanceStore.map((f) => ({ name: f.name, target: f.target, path: f.path })),
      });
      phase("start");
      // Persistent domain (a stopped instance keeps its definition and
      // disk), defined before it starts, so a crash at any point leaves
      // nothing, a defined domain (which a retry starts) or a running one.
      await this.virsh.defineAndStart(xml, name);
    } catch (err) {
      phase("cleanup");
      // The attach must be over before the NIC's removal is queued behind it.
      const [, , made] = await Promise.all([attached, imageReady, scratch]);
      this.opts.log.warn({ instanceId: spec.instanceId, err: String(err), reuseRootDisk: spec.reuseRootDisk }, "create failed; removing what it made");
      // A reused disk, its console log and the scratch disks it had stay: only the domain and the missing scratch disks were made here.
      const madeScratch = made.ok ? made.value.map((f) => f.path) : [];
      const undo = spec.reuseRootDisk ? this.removeDomain(name).then(() => removeHostFiles(this.runner, [...stagedScratch, ...madeScratch])) : this.remove(spec.instanceId);
      await undo.catch((cleanupErr: unknown) =>
        this.opts.log.error({ instanceId: spec.instanceId, err: String(cleanupErr) }, "cleanup after failed create failed; reconcile will retry"),
      );
      throw err;
    }
    return PowerState.POWER_STATE_RUNNING;
  }

  /** Checks the image, then makes a fresh overlay on its (resolved) root disk at `path` (replacing whatever is there). */
  private async makeOverlay(spec: ValidSpec, path: string): Promise<ImageFiles> {
    const image = await this.checkImage(spec);
    await this.ensureInstancesDir();
    await this.runner.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.rootPath, path, `${spec.rootDiskGib}G`]);
    // A guest's disk is readable by root and (through libvirt's ownership
    // change at start) QEMU only; it holds nothing yet, so the moment before is harmless.
    await setHostFileMode(this.runner, path, 0o600);
    return image;
  }

  /**
   * Blank instance-store disks of `spec` under their staged names: every
   * one for a launch, and for a start each whose file is missing (scratch:
   * made anew, never a reason for a start to fail). Returns those made.
   */
  private async stageInstanceStore(spec: ValidSpec, all: readonly InstanceStoreFile[]): Promise<InstanceStoreFile[]> {
    if (all.length === 0) return [];
    const present = spec.reuseRootDisk ? await hostFileIdentities(this.runner, all.map((f) => f.path)) : [];
    const wanted = all.filter((_, i) => present[i] === undefined);
    await this.ensureInstancesDir();
    // 0600 as the overlay: libvirt hands it to QEMU's user at start.
    await Promise.all(wanted.map((f) => makeSparseHostFile(this.runner, f.staged, f.sizeGib * GIB, 0o600)));
    return wanted;
  }

  /**
   * Renames each staged blank disk into place: over whatever is there when
   * `replace`, otherwise only where the disk's file is missing (the staged
   * one is then removed, the file kept).
   */
  private async placeInstanceStore(files: readonly InstanceStoreFile[], { replace }: { replace: boolean }): Promise<void> {
    const present = replace || files.length === 0 ? [] : await hostFileIdentities(this.runner, files.map((f) => f.path));
    for (const [i, f] of files.entries()) if (present[i] === undefined) await moveHostFile(this.runner, f.staged, f.path);
    await removeHostFiles(this.runner, files.filter((_, i) => present[i] !== undefined).map((f) => f.staged));
  }

  async startInstance(instanceId: string): Promise<agent.PowerState> {
    const { s } = await this.existing(instanceId);
    return this.ensureRunning(instanceId, s);
  }

  async stopInstance(instanceId: string, opts: StopOptions): Promise<agent.PowerState> {
    const power = await this.powerOff(instanceId, opts);
    // Also when it was off already: a stop interrupted after the power-off is only done once this has run.
    await this.wipeInstanceStore(instanceId);
    return power;
  }

  /** Postcondition: the domain is shut off (returns SHUT_OFF) or there is none (ABSENT); see stopInstance. */
  private async powerOff(instanceId: string, { force, timeoutMs }: StopOptions): Promise<agent.PowerState> {
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

  /**
   * Postcondition: each instance-store disk file the instance has (any
   * name: the files, not a spec, say which there are) is a blank sparse
   * file of the size it had. Wiped on stop because EC2's instance store
   * does not survive a stop: the data is gone (and its space free) from
   * the moment the instance is stopped, not only once it starts again,
   * and a start costs nothing more. Each blank is made under the disk's
   * staged name and renamed over it, so a crash leaves the old file or
   * the blank one, never none or a torn one, and a repeat wipes again.
   * Only while the domain is shut off or absent: a running QEMU would keep
   * writing the unlinked file.
   */
  private async wipeInstanceStore(instanceId: string): Promise<void> {
    const files = INSTANCE_STORE_NAMES.map((name) => this.instanceStoreFile(instanceId, name));
    const sizes = await hostFileSizes(this.runner, files.map((f) => f.path));
    const wiped = files.flatMap((f, i) => (sizes[i] === undefined ? [] : [{ ...f, sizeBytes: sizes[i] }]));
    await Promise.all(wiped.map(async (f) => {
      await makeSparseHostFile(this.runner, f.staged, f.sizeBytes, 0o600);
      await moveHostFile(this.runner, f.staged, f.path);
    }));
    if (wiped.length) this.opts.log.info({ instanceId, files: wiped.map((f) => f.path) }, "instance-store disks wiped");
  }

  async rebootInstance(instanceId: string): Promise<agent.PowerState> {
    const { name, s } = await this.existing(instanceId);
    if (s.power !== PowerState.POWER_STATE_RUNNING) return this.ensureRunning(instanceId, s);
    await this.virsh.run(["reset", "--", name]);
    return PowerState.POWER_STATE_RUNNING;
  }

  async attachVolume(instanceId: string, attachment: VolumeAttachment, disk: DiskSource): Promise<void> {
    const a = validateAttachment(attachment);
    const dom = await this.volumeDomain(instanceId);
    if (!dom) throw new DriverError("NotFound", `no domain for ${instanceId}`);
    await this.volumes.attach(dom, a, disk);
  }

  async detachVolume(instanceId: string, volumeId: string, opts: DetachOptions): Promise<void> {
    checkVolumeId(volumeId);
    const dom = await this.volumeDomain(instanceId);
    if (dom) await this.volumes.detach(dom, volumeId, opts);
  }

  async modifyAttachedVolume(instanceId: string, input: VolumeModification, resizeOffline: () => Promise<void>): Promise<boolean> {
    const mod = validateModification(input);
    const dom = await this.volumeDomain(instanceId);
    return dom !== undefined && this.volumes.modify(dom, mod, resizeOffline);
  }

  async snapshotAttachedVolume<T>(instanceId: string, volume: LiveSnapshotVolume, take: (image: string) => Promise<T>): Promise<T | undefined> {
    checkVolumeId(volume.volumeId);
    const dom = await this.volumeDomain(instanceId);
    return dom && this.volumes.snapshot(dom, volume, take);
  }

  async destroyInstance(instanceId: string): Promise<agent.PowerState> {
    await this.remove(checkInstanceId(instanceId));
    return PowerState.POWER_STATE_ABSENT;
  }

  async consoleOutput(instanceId: string): Promise<Buffer> {
    const log = this.consoleLogPath(checkInstanceId(instanceId));
    if ((await hostFileIdentities(this.runner, [log]))[0] === undefined) return Buffer.alloc(0);
    return (await this.runner.run(["tail", "-c", String(CONSOLE_TAIL_BYTES), "--", log])).stdout;
  }

  async list(): Promise<DomainStatus[]> {
    const out: DomainStatus[] = [];
    // One listing: every domain with its state, as one snapshot.
    for (const [name, state] of await this.virsh.states()) {
      const instanceId = instanceIdOf(name, this.opts.domainPrefix);
      if (instanceId) out.push({ instanceId, powerState: powerStateOf(state) });
    }
    return out;
  }

  async listArtifacts(): Promise<string[]> {
    await this.ensureInstancesDir();
    return parseArtifacts(await this.listDir(this.opts.instancesDir), this.opts.domainPrefix);
  }

  async quarantineInstance(instanceId: string): Promise<void> {
    const name = this.domainName(instanceId);
    await this.removeDomain(name);
    const files = this.instanceFiles(instanceId);
    const identities = await hostFileIdentities(this.runner, files.map((f) => f.path));
    const moving = files.filter((_, i) => identities[i] !== undefined);
    if (moving.length) {
      await this.ensureQuarantineDir();
      const at = Date.now();
      for (const f of moving) await moveHostFile(this.runner, f.path, posix.join(this.quarantineDir(), quarantineName(this.opts.domainPrefix, instanceId, at, f.suffix)));
      this.opts.log.warn({ instanceId, files: moving.map((f) => f.path), quarantineDir: this.quarantineDir() }, "moved an orphan instance's files to quarantine");
    }
    await this.opts.network?.detach(instanceId);
  }

  async purgeQuarantine(olderThanMs: number): Promise<string[]> {
    const dir = this.quarantineDir();
    if (!(await hostPathExists(this.runner, dir))) return [];
    const cutoff = Date.now() - olderThanMs;
    const expired = parseQuarantined(await this.listDir(dir), this.opts.domainPrefix).filter((q) => q.at < cutoff).map((q) => q.name);
    await removeHostFiles(this.runner, expired.map((n) => posix.join(dir, n)));
    return expired;
  }

  async brokenInterfaces(instanceIds: readonly string[]): Promise<string[]> {
    const network = this.opts.network;
    if (!network) return [];
    const nics = instanceIds.flatMap((instanceId) => {
      const nic = network.interfaceOf(checkInstanceId(instanceId));
      return nic ? [{ instanceId, nic }] : [];
    });
    if (nics.length === 0) return [];
    const links = await listLinks(this.runner);
    return nics.filter(({ nic }) => !tapHealthy(links.get(nic.tap), nic.bridge)).map((n) => n.instanceId);
  }

  async repairInterface(instanceId: string): Promise<InterfaceRepair | undefined> {
    const started = Date.now();
    const name = this.domainName(instanceId);
    if ((await this.virsh.state(name)).state !== "running") return undefined;
    const tap = tapName(instanceId);
    // The definition says what the guest should have; the live XML what it has now.
    const defined = parseDomainInterfaces(await this.dumpXml(name, "--inactive")).find((i) => i.tap === tap);
    if (!defined) return undefined;
    const nic: InterfaceDefinition = { bridge: defined.bridge, tap, mac: defined.mac, pciAddress: defined.pciAddress };
    const plugged = parseDomainInterfaces(await this.dumpXml(name)).some((i) => i.mac === nic.mac);
    const link = (await listLinks(this.runner)).get(tap);
    if (plugged && tapHealthy(link, nic.bridge)) return undefined;

    // Bridge, DHCP and firewall first: libvirt cannot plug a NIC into a missing bridge.
    await this.opts.network?.prepare(instanceId);
    let action: InterfaceRepair["action"];
    if (plugged && link) {
      await enslave(this.runner, tap, nic.bridge);
      action = "reattached";
    } else {
      // The tap is gone, and with it QEMU's backend of the guest's NIC: only
      // a new NIC gets a new backend, so unplug the dead one (the guest must
      // acknowledge, as with any PCI hot-unplug) and plug in the same again.
      await withHostTempFile(this.runner, "cirrus-domain", buildInterfaceXml(nic), async (file) => {
        if (plugged) await this.unplug(name, file, nic.mac);
        await this.virsh.run(["attach-device", "--live", "--", name, file]);
      });
      action = plugged ? "replugged" : "plugged";
    }
    if (!tapHealthy((await listLinks(this.runner)).get(tap), nic.bridge)) throw new Error(`tap ${tap} of ${instanceId} is still not up on ${nic.bridge} after the repair`);
    // The firewall names the tap, so its rules match the new one as they did
    // the old; one more sync restores anything else that drifted meanwhile.
    await this.opts.network?.prepare(instanceId);
    const repair: InterfaceRepair = { action, tap, bridge: nic.bridge, durationMs: Date.now() - started };
    this.opts.log.warn({ instanceId, ...repair, mac: nic.mac }, "repaired the NIC of a running instance");
    return repair;
  }

  close(): Promise<void> {
    this.rpc?.close();
    return this.runner.close();
  }

  /** One line per call with its phases (info), and every command it ran with its duration (debug). */
  private logTrace(op: string, instanceId: string, trace: CommandTrace, result: PromiseSettledResult<unknown>): void {
    const { log } = this.opts;
    const phases = Object.fromEntries(trace.phases().map((p) => [p.name, p.ms]));
    const summary = { op, instanceId, ok: result.status === "fulfilled", ms: trace.elapsed(), phases, spans: trace.spans, commandCount: trace.commands.length };
    if (log.isLevelEnabled("debug")) log.debug({ ...summary, commands: trace.commands }, `${op} timings`);
    else log.info(summary, `${op} timings`);
  }

  private async dumpXml(name: string, ...flags: Array<"--inactive">): Promise<string> {
    return (await this.virsh.run(["dumpxml", ...flags, "--", name])).stdout.toString("utf8");
  }

  /**
   * Hot-unplugs the NIC in `file` and waits until the guest has released it.
   * A failed request is not fatal by itself (an earlier round's unplug may
   * still be in progress); only the NIC still being there at the end is.
   */
  private async unplug(name: string, file: string, mac: string): Promise<void> {
    let refused = "";
    try {
      await this.virsh.run(["detach-device", "--live", "--", name, file]);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      refused = `: ${err.stderr.trim().slice(0, 300)}`;
    }
    const deadline = Date.now() + UNPLUG_WAIT_MS;
    while (parseDomainInterfaces(await this.dumpXml(name)).some((i) => i.mac === mac)) {
      if (Date.now() >= deadline) throw new Error(`domain ${name} has not released its NIC ${mac} within ${UNPLUG_WAIT_MS} ms of the unplug request${refused}; retrying next round`);
      await sleep(UNPLUG_POLL_MS);
    }
  }

  /**
   * Domain (stopped first, then undefined), overlay, console log,
   * instance-store disks and the NIC's host side all gone. The domain's
   * volumes only leave with its definition (`undefine` without storage
   * flags never deletes a disk); a live snapshot's overlay left on one is
   * merged into it first.
   */
  private async remove(instanceId: string): Promise<void> {
    const name = this.domainName(instanceId);
    await this.removeDomain(name, () => this.volumes.settleOverlays({ name, instanceId, running: false }));
    await removeHostFiles(this.runner, this.instanceFiles(instanceId).map((f) => f.path));
    await this.opts.network?.detach(instanceId);
  }

  /**
   * The domain powered off, then undefined (`undefine` alone: its disks,
   * root and volumes, are never deleted with it); `whileOff` runs between.
   * Its files are untouched.
   */
  private async removeDomain(name: string, whileOff?: () => Promise<void>): Promise<void> {
    const s = await this.virsh.state(name);
    if (s.power === PowerState.POWER_STATE_ABSENT) return;
    if (s.power !== PowerState.POWER_STATE_SHUT_OFF) {
      await this.virsh.change(["destroy", "--", name], (x) => x.power === PowerState.POWER_STATE_SHUT_OFF || x.power === PowerState.POWER_STATE_ABSENT, name);
    }
    await whileOff?.();
    await this.virsh.change(["undefine", "--", name], (x) => x.power === PowerState.POWER_STATE_ABSENT, name);
  }

  /** Readies the host side of the spec's NIC (bridge, DHCP, firewall); undefined for an instance without one. */
  private async attachNic(spec: ValidSpec): Promise<DomainDefinition["nic"]> {
    if (!spec.network) return undefined;
    if (!this.opts.network) throw new DriverError("InvalidSpec", "this host agent has no networking configured; cannot give the instance a NIC");
    return { ...(await this.opts.network.attach(spec.instanceId, spec.network)), mac: spec.network.mac };
  }

  /**
   * The instance's domain for a volume call, undefined when it has none:
   * running (a live definition: running or paused) or shut off (only its
   * persistent one). Any other state settles by itself; the caller retries.
   */
  private async volumeDomain(instanceId: string): Promise<VolumeDomain | undefined> {
    const name = this.domainName(instanceId);
    const s = await this.virsh.state(name);
    if (s.power === PowerState.POWER_STATE_ABSENT) return undefined;
    if (s.state === "running" || s.state === "paused") return { name, instanceId, running: true };
    if (s.state === "shut off" || s.state === "crashed") return { name, instanceId, running: false };
    throw new Error(`domain ${name} is ${s.state}; retry when it settles`);
  }

  /** The instance's domain name and state; throws NotFound when it has no domain. */
  private async existing(instanceId: string): Promise<{ name: string; s: DomainState }> {
    const name = this.domainName(instanceId);
    const s = await this.virsh.state(name);
    if (s.power === PowerState.POWER_STATE_ABSENT) throw new DriverError("NotFound", `no domain for ${instanceId}`);
    return { name, s };
  }

  /** networkReady: the caller has just readied the NIC's host side, so it is not synced again. */
  private async ensureRunning(instanceId: string, s: DomainState, { networkReady = false } = {}): Promise<agent.PowerState> {
    const name = this.domainName(instanceId);
    const running = (x: DomainState) => x.power === PowerState.POWER_STATE_RUNNING;
    switch (s.state) {
      case "running":
        return PowerState.POWER_STATE_RUNNING;
      case "shut off":
      case "crashed":
        // The bridge may be gone (host rebooted, removed while the instance was stopped).
        if (!networkReady) await this.opts.network?.prepare(instanceId);
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

  /**
   * The image's files with their symlinks followed, which is what the
   * instance then uses. Throws InvalidImage unless every file exists, lies
   * below an image directory and in no private directory (also once
   * resolved: a symlink in an image directory cannot point at another
   * instance's disk or the agent's secret), and the root disk is a usable
   * qcow2 image. The files are checked every time (one stat and one
   * resolution each, in-process where the runner can); what `qemu-img info`
   * says about a root disk is remembered for as long as the file's identity
   * (device, inode, size, modification time) stays the same, since an image
   * build is never rewritten in place: replacing or changing the file reads
   * it again.
   */
  private async checkImage(spec: ValidSpec): Promise<ImageFiles> {
    const { kernelPath, ramdiskPath } = spec.image;
    const files: Array<[string, string]> = [];
    for (const [what, path] of [["kernel", kernelPath], ["ramdisk", ramdiskPath], ["root disk", spec.image.rootPath]] as const) if (path) files.push([what, path]);
    const [identities, resolved, dirs] = await Promise.all([
      hostFileIdentities(this.runner, files.map(([, path]) => path)),
      resolveHostPaths(this.runner, files.map(([, path]) => path)),
      this.resolvedDirs(),
    ]);
    files.forEach(([what, path], i) => {
      if (identities[i] === undefined) throw new DriverError("InvalidImage", `${what} ${path} of image ${spec.image.imageId} is not on this host`);
      const refusal = imagePathRefusal(path, this.opts.imageDirs) ?? imagePathRefusal(resolved[i]!, dirs.imageDirs, dirs.privateDirs);
      if (refusal) throw new DriverError("InvalidImage", `${what} ${path} of image ${spec.image.imageId} cannot be used as an image file: ${refusal}`);
    });
    const resolvedOf = (path: string | undefined) => (path ? resolved[files.findIndex(([, p]) => p === path)] : undefined);
    const image: ImageFiles = { rootPath: resolved.at(-1)!, kernelPath: resolvedOf(kernelPath), ramdiskPath: resolvedOf(ramdiskPath) };
    const rootPath = image.rootPath;
    const identity = identities.at(-1)!;
    const known = this.imageSizes.get(rootPath);
    let virtualSize = known?.identity === identity ? known.virtualSize : undefined;
    if (virtualSize === undefined) {
      let info: { format: string; virtualSize: number };
      try {
        // --force-share: running instances hold the image open read-only.
        const r = await this.runner.run(["qemu-img", "info", "--force-share", "-f", "qcow2", "--output=json", "--", rootPath]);
        info = parseImageInfo(r.stdout.toString("utf8"));
      } catch (err) {
        if (!(err instanceof CommandError) || err.timedOut) throw err;
        throw new DriverError("InvalidImage", `root disk ${spec.image.rootPath} of image ${spec.image.imageId} is not a usable qcow2 image: ${err.stderr.trim().slice(0, 300)}`);
      }
      virtualSize = info.virtualSize;
      // Oldest first out: a host has a handful of images, the bound only stops a leak.
      if (this.imageSizes.size >= IMAGE_CACHE_ENTRIES) this.imageSizes.delete(this.imageSizes.keys().next().value!);
      this.imageSizes.set(rootPath, { identity, virtualSize });
    }
    if (virtualSize > spec.rootDiskGib * GIB) {
      throw new DriverError("InvalidSpec", `rootDiskGib ${spec.rootDiskGib} is smaller than image ${spec.image.imageId} (${Math.ceil(virtualSize / GIB)} GiB)`);
    }
    return image;
  }

  /** The image and private directories with their symlinks followed, resolved once (they are the operator's, not a client's). */
  private resolvedDirs(): Promise<{ imageDirs: string[]; privateDirs: string[] }> {
    const { imageDirs, privateDirs, instancesDir } = this.opts;
    this.dirsResolved ??= resolveHostPaths(this.runner, [...imageDirs, instancesDir, ...privateDirs]).then(
      (all) => ({ imageDirs: all.slice(0, imageDirs.length), privateDirs: all.slice(imageDirs.length) }),
      (err: unknown) => {
        this.dirsResolved = undefined;
        throw err;
      },
    );
    return this.dirsResolved;
  }

  private ensureInstancesDir(): Promise<void> {
    // 0711: QEMU's user must traverse it to open its disk, no other user may list it.
    this.dirReady ??= this.runner.run(["mkdir", "-p", "--", this.opts.instancesDir]).then(() => setHostFileMode(this.runner, this.opts.instancesDir, 0o711)).then(
      () => undefined,
      (err: unknown) => {
        this.dirReady = undefined;
        throw err;
      },
    );
    return this.dirReady;
  }

  private ensureQuarantineDir(): Promise<void> {
    // 0700: nobody but root reads what was quarantined.
    return this.runner.run(["mkdir", "-p", "-m", "0700", "--", this.quarantineDir()]).then(() => undefined);
  }

  private async listDir(dir: string): Promise<string[]> {
    return parseNameList((await this.runner.run(["ls", "-A1", "--", dir])).stdout.toString("utf8"));
  }

  private domainName(instanceId: string): string {
    return this.opts.domainPrefix + checkInstanceId(instanceId);
  }

  /**
   * Every file the instance has in the instances directory. Named with the
   * agent's domain prefix, so agents sharing one directory never see one
   * another's files among their own.
   */
  private instanceFiles(instanceId: string): Array<{ suffix: ArtifactSuffix; path: string }> {
    return ARTIFACT_SUFFIXES.map((suffix) => ({ suffix, path: this.instancePath(instanceId, suffix) }));
  }

  private instancePath(instanceId: string, suffix: ArtifactSuffix): string {
    return posix.join(this.opts.instancesDir, `${this.opts.domainPrefix}${checkInstanceId(instanceId)}.${suffix}`);
  }

  private overlayPath(instanceId: string): string {
    return this.instancePath(instanceId, "qcow2");
  }

  /** Where a new overlay is made before it is known that no domain exists (see create). */
  private stagedOverlayPath(instanceId: string): string {
    return this.instancePath(instanceId, "staged.qcow2");
  }

  private consoleLogPath(instanceId: string): string {
    return this.instancePath(instanceId, "console.log");
  }

  /** Where an instance-store disk's file is, and where a blank one is made before it is renamed there. */
  private instanceStoreFile(instanceId: string, name: InstanceStoreName): { path: string; staged: string } {
    return { path: this.instancePath(instanceId, instanceStoreSuffix(name)), staged: this.instancePath(instanceId, instanceStoreSuffix(name, "staged")) };
  }

  /** The spec's instance-store disks with their files. */
  private instanceStoreOf(spec: ValidSpec): InstanceStoreFile[] {
    return spec.instanceStore.map((d) => ({ ...d, ...this.instanceStoreFile(spec.instanceId, d.name) }));
  }

  /** Where orphans' files wait out their retention (see quarantineInstance). */
  private quarantineDir(): string {
    return posix.join(this.opts.instancesDir, "quarantine");
  }
}

/** The spec's volumes as disks of a new definition, each at the file `files` maps it to; InvalidSpec for one that is missing there. */
function volumeDisks(spec: ValidSpec, files: ReadonlyMap<string, DiskSource>): VolumeDiskDefinition[] {
  return spec.volumes.map((v) => {
    const disk = files.get(v.volumeId);
    if (!disk) throw new DriverError("InvalidSpec", `no file was given for volume ${v.volumeId} of ${spec.instanceId}`);
    return { ...v, path: disk.path };
  });
}

/** An instance-store disk of a spec with its file and staged file. */
interface InstanceStoreFile extends ValidInstanceStoreDisk {
  path: string;
  staged: string;
}

/** An image's files as the instance uses them: symlinks followed. */
interface ImageFiles {
  rootPath: string;
  kernelPath?: string;
  ramdiskPath?: string;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** A promise that never rejects, for work started now and acted on later. */
function settled<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

async function unwrap<T>(p: Promise<Settled<T>>): Promise<T> {
  const r = await p;
  if (!r.ok) throw r.error;
  return r.value;
}

/** Marks the start of a phase of the current call in its trace. */
function phase(name: string): void {
  currentTrace()?.phase(name);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
