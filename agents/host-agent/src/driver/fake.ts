// A hypervisor that exists only in memory, with real resource accounting:
// for scheduler and scale simulations, never for running guests.
import { agent } from "@cirrus/proto";
import { checkInstanceId, validateSpec } from "./spec.js";
import { CONSOLE_TAIL_BYTES, DriverError, type Capacity, type DomainStatus, type HypervisorDriver, type InstanceSpec, type InterfaceRepair, type StopOptions } from "./types.js";

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

  async createInstance(input: InstanceSpec): Promise<agent.PowerState> {
    const spec = validateSpec(input);
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
    const d: FakeDomain = { instanceId: spec.instanceId, spec: { vcpus: spec.vcpus, memoryMib: spec.memoryMib, rootDiskGib: spec.rootDiskGib }, running: false, boots: 0, console: "" };
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
