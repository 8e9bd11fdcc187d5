// A hypervisor that exists only in memory, with real resource accounting:
// for scheduler and scale simulations, never for running guests.
import { agent } from "@cirrus/proto";
import type { DiskSource } from "../storage/types.js";
import { checkInstanceId, checkVolumeId, validateAttachment, validateModification, validateSpec, type ValidAttachment } from "./spec.js";
import { CONSOLE_TAIL_BYTES, DriverError, type Capacity, type DetachOptions, type DomainStatus, type HypervisorDriver, type InstanceSpec, type InterfaceRepair, type LiveSnapshotVolume, type StopOptions, type VolumeAttachment, type VolumeModification } from "./types.js";

const { PowerState } = agent;

export interface FakeDriverOptions {
  capacity: Capacity;
  /** Latency added to every call, in ms (uniform in [min, max]). */
  delayMs?: { min: number; max: number };
  /** Probability in [0, 1] that a mutating call fails with a transient error before doing anything. */
  failureRate?: number;
  /** Source of randomness, injectable for deterministic simulations. */
  random?: () => number;
}

interface FakeDomain {
  instanceId: string;
  spec: { vcpus: number; memoryMib: number; rootDiskGib: number };
  running: boolean;
  boots: number;
  console: string;
  /** Attached volumes, by id. */
  volumes: Map<string, ValidAttachment>;
}

/**
 * Follows HypervisorDriver's postconditions. Resources (vCPUs, memory, disk)
 * are held by every defined domain, running or not, as libvirt would hold
 * the disk and as the scheduler reserves them; createInstance beyond
 * capacity fails with a transient error and changes nothing.
 */
export class FakeDriver implements HypervisorDriver {
  readonly kind = "fake" as const;
  private readonly domains = new Map<string, FakeDomain>();
  private readonly random: () => number;

  constructor(private readonly opts: FakeDriverOptions) {
    this.random = opts.random ?? Math.random;
  }

  async capacity(): Promise<Capacity> {
    await this.delay();
    return { ...this.opts.capacity };
  }

  /** What the defined domains hold; for simulations' assertions. */
  used(): Capacity {
    const u = { vcpus: 0, memoryMib: 0, diskGib: 0 };
    for (const d of this.domains.values()) {
      u.vcpus += d.spec.vcpus;
      u.memoryMib += d.spec.memoryMib;
      u.diskGib += d.spec.rootDiskGib;
    }
    return u;
  }

  async createInstance(input: InstanceSpec, volumes: ReadonlyMap<string, DiskSource> = new Map()): Promise<agent.PowerState> {
    const spec = validateSpec(input);
    const missing = spec.volumes.find((v) => !volumes.has(v.volumeId));
    if (missing) throw new DriverError("InvalidSpec", `no file was given for volume ${missing.volumeId} of ${spec.instanceId}`);
    await this.delayOrFail("createInstance");
    const existing = this.domains.get(spec.instanceId);
    if (existing) return this.boot(existing);
    // A fake instance's disk lives and dies with its domain.
    if (spec.reuseRootDisk) throw new DriverError("MissingDisk", `${spec.instanceId} has no disk on this fake host`);
    const used = this.used();
    const cap = this.opts.capacity;
    if (used.vcpus + spec.vcpus > cap.vcpus || used.memoryMib + spec.memoryMib > cap.memoryMib || used.diskGib + spec.rootDiskGib > cap.diskGib) {
      throw new Error(`fake host is full: ${JSON.stringify(used)} used of ${JSON.stringify(cap)}`);
    }
    const d: FakeDomain = { instanceId: spec.instanceId, spec: { vcpus: spec.vcpus, memoryMib: spec.memoryMib, rootDiskGib: spec.rootDiskGib }, running: false, boots: 0, console: "", volumes: new Map(spec.volumes.map((v) => [v.volumeId, v])) };
    this.domains.set(spec.instanceId, d);
    return this.boot(d);
  }

  async startInstance(instanceId: string): Promise<agent.PowerState> {
    const d = this.get(instanceId);
    await this.delayOrFail("startInstance");
    return this.boot(d);
  }

  async stopInstance(instanceId: string, _opts: StopOptions): Promise<agent.PowerState> {
    checkInstanceId(instanceId);
    await this.delayOrFail("stopInstance");
    const d = this.domains.get(instanceId);
    if (!d) return PowerState.POWER_STATE_ABSENT;
    d.running = false;
    return PowerState.POWER_STATE_SHUT_OFF;
  }

  async rebootInstance(instanceId: string): Promise<agent.PowerState> {
    const d = this.get(instanceId);
    await this.delayOrFail("rebootInstance");
    d.running = false;
    return this.boot(d);
  }

  /** As libvirt's, without a guest: attached at once whether the domain runs or not. */
  async attachVolume(instanceId: string, attachment: VolumeAttachment, _disk: DiskSource): Promise<void> {
    const a = validateAttachment(attachment);
    const d = this.get(instanceId);
    await this.delayOrFail("attachVolume");
    const at = d.volumes.get(a.volumeId)?.target;
    if (at !== undefined && at !== a.target) throw new DriverError("Conflict", `${a.volumeId} is attached to ${instanceId} at ${at}, not ${a.target}`);
    if ([...d.volumes.values()].some((v) => v.target === a.target && v.volumeId !== a.volumeId)) throw new DriverError("Conflict", `target ${a.target} of ${instanceId} holds another disk`);
    // Attached already: no change (its QoS included, as libvirt's).
    if (at === undefined) d.volumes.set(a.volumeId, a);
  }

  /** No QEMU holds a fake volume's file, so the store grows it whether the domain runs or not. */
  async modifyAttachedVolume(instanceId: string, input: VolumeModification, resizeOffline: () => Promise<void>): Promise<boolean> {
    checkInstanceId(instanceId);
    const mod = validateModification(input);
    await this.delayOrFail("modifyAttachedVolume");
    const a = this.domains.get(instanceId)?.volumes.get(mod.volumeId);
    if (!a) return false;
    await resizeOffline();
    a.qos = mod.qos;
    return true;
  }

  /** The volume's attachment to the instance's domain (its target and QoS), for tests; undefined when it is not attached. */
  attachment(instanceId: string, volumeId: string): ValidAttachment | undefined {
    return this.domains.get(instanceId)?.volumes.get(volumeId);
  }

  /** A fake guest always releases a volume at once. */
  async detachVolume(instanceId: string, volumeId: string, _opts: DetachOptions): Promise<void> {
    checkInstanceId(instanceId);
    checkVolumeId(volumeId);
    await this.delayOrFail("detachVolume");
    this.domains.get(instanceId)?.volumes.delete(volumeId);
  }

  /** No guest writes a fake volume, so its own file is a point-in-time image as it is. */
  async snapshotAttachedVolume<T>(instanceId: string, volume: LiveSnapshotVolume, take: (image: string) => Promise<T>): Promise<T | undefined> {
    checkInstanceId(instanceId);
    checkVolumeId(volume.volumeId);
    await this.delayOrFail("snapshotAttachedVolume");
    const d = this.domains.get(instanceId);
    if (!d?.running || !d.volumes.has(volume.volumeId)) return undefined;
    return take(volume.disk.path);
  }

  async destroyInstance(instanceId: string): Promise<agent.PowerState> {
    checkInstanceId(instanceId);
    await this.delayOrFail("destroyInstance");
    this.domains.delete(instanceId);
    return PowerState.POWER_STATE_ABSENT;
  }

  /** Quarantined fake domains, with when they were quarantined. */
  private readonly quarantined = new Map<string, { domain: FakeDomain; at: number }>();

  async quarantineInstance(instanceId: string): Promise<void> {
    checkInstanceId(instanceId);
    await this.delayOrFail("quarantineInstance");
    const domain = this.domains.get(instanceId);
    if (!domain) return;
    domain.running = false;
    this.quarantined.set(instanceId, { domain, at: Date.now() });
    this.domains.delete(instanceId);
  }

  async purgeQuarantine(olderThanMs: number): Promise<string[]> {
    const cutoff = Date.now() - olderThanMs;
    const expired = [...this.quarantined].filter(([, q]) => q.at < cutoff).map(([id]) => id);
    for (const id of expired) this.quarantined.delete(id);
    return expired;
  }

  async consoleOutput(instanceId: string): Promise<Buffer> {
    checkInstanceId(instanceId);
    await this.delay();
    const out = Buffer.from(this.domains.get(instanceId)?.console ?? "", "utf8");
    return out.subarray(Math.max(0, out.length - CONSOLE_TAIL_BYTES));
  }

  async list(): Promise<DomainStatus[]> {
    await this.delay();
    return [...this.domains].map(([instanceId, d]) => ({
      instanceId,
      powerState: d.running ? PowerState.POWER_STATE_RUNNING : PowerState.POWER_STATE_SHUT_OFF,
    }));
  }

  async listArtifacts(): Promise<string[]> {
    await this.delay();
    return [...this.domains.keys()];
  }

  /** The fake has no NICs, so nothing is ever broken. */
  async brokenInterfaces(_instanceIds: readonly string[]): Promise<string[]> {
    return [];
  }

  async repairInterface(instanceId: string): Promise<InterfaceRepair | undefined> {
    checkInstanceId(instanceId);
    return undefined;
  }

  async close(): Promise<void> {}

  private get(instanceId: string): FakeDomain {
    checkInstanceId(instanceId);
    const d = this.domains.get(instanceId);
    if (!d) throw new DriverError("NotFound", `no domain for ${instanceId}`);
    return d;
  }

  /** Boots a stopped domain, writing the same console marker the test image prints. */
  private boot(d: FakeDomain): agent.PowerState {
    if (!d.running) {
      d.running = true;
      d.boots++;
      d.console += `CIRRUS-BOOT instance-id=${d.instanceId} boot=${d.boots}\n`;
    }
    return PowerState.POWER_STATE_RUNNING;
  }

  private async delay(): Promise<void> {
    const range = this.opts.delayMs;
    if (!range || range.max <= 0) return;
    await new Promise((r) => setTimeout(r, range.min + this.random() * (range.max - range.min)));
  }

  private async delayOrFail(call: string): Promise<void> {
    await this.delay();
    if ((this.opts.failureRate ?? 0) > this.random()) throw new Error(`fake ${call} failed (injected failure)`);
  }
}
