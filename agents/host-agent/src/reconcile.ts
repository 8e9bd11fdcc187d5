// The agent reconciles, it does not just obey (design principle 5): after each
// heartbeat it compares what the host has with what the control plane wants
// and removes what nobody wants any more, after a grace period. It also
// repairs the NICs of running instances whose tap device was deleted or
// moved behind its back (HypervisorDriver.repairInterface), after the host
// network's own sync has put bridges, DHCP and rules back.
//
// Power-state drift (a domain killed behind our back) is not repaired here:
// the heartbeat reports it and the control plane updates its state, since the
// hypervisor is authoritative for power state.
import type { Logger } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import type { DomainStatus, HypervisorDriver } from "./driver/types.js";
import type { KeyedMutex } from "./keyed-mutex.js";

export interface ReconcileInput {
  /** Instance ids with a domain on the host. */
  actual: readonly string[];
  /** Instance ids with a disk or console log on the host. */
  artifacts: readonly string[];
  /** Instance ids the control plane wants on this host. */
  desired: ReadonlySet<string>;
  /** When each currently-unwanted id was first seen unwanted (from the previous plan). */
  orphanSince: ReadonlyMap<string, number>;
  now: number;
  graceMs: number;
}

export interface ReconcilePlan {
  /** Ids to destroy: present, and unwanted continuously for at least graceMs. */
  destroy: string[];
  /** The timers to pass to the next plan: exactly the ids present and unwanted now. */
  orphanSince: Map<string, number>;
}

/**
 * Pure. An id present on the host (domain or artifact) and not desired is
 * timed from the first plan that saw it so; once unwanted for graceMs it is
 * destroyed. An id that is desired again, or gone, loses its timer, so it
 * would start over. A desired id is never in `destroy`.
 */
export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const orphanSince = new Map<string, number>();
  const destroy: string[] = [];
  for (const id of new Set([...input.actual, ...input.artifacts])) {
    if (input.desired.has(id)) continue;
    const since = input.orphanSince.get(id) ?? input.now;
    orphanSince.set(id, since);
    if (input.now - since >= input.graceMs) destroy.push(id);
  }
  return { destroy: destroy.sort(), orphanSince };
}

/** What one round did. */
export interface RoundReport {
  /** Orphans destroyed. */
  destroyed: string[];
  /** Running instances whose NIC was repaired. */
  repaired: string[];
}

/** Runs the planner after each heartbeat and carries its timers from one round to the next. */
export class Reconciler {
  private orphanSince = new Map<string, number>();

  constructor(
    private readonly driver: HypervisorDriver,
    private readonly locks: KeyedMutex,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * One round: `actual` is what the heartbeat reported, `state` the host
   * state applied last (undefined until the control plane sent one: then
   * nothing is known to be unwanted, and nothing is destroyed). Destroys
   * orphans past their grace, then repairs the NICs of the other running
   * instances where the driver finds them broken, each under the same
   * per-instance lock the gRPC server uses. One failed destroy or repair
   * does not stop the others; it is retried next round.
   */
  async round(actual: readonly DomainStatus[], state: agent.HostState | undefined): Promise<RoundReport> {
    const plan = state
      ? planReconcile({
        actual: actual.map((a) => a.instanceId),
        artifacts: await this.driver.listArtifacts(),
        desired: new Set(state.instances.map((spec) => spec.instanceId)),
        orphanSince: this.orphanSince,
        now: this.now(),
        graceMs: this.graceMs,
      })
      : { destroy: [], orphanSince: new Map<string, number>() };
    this.orphanSince = plan.orphanSince;
    const destroyed: string[] = [];
    for (const instanceId of plan.destroy) {
      try {
        await this.locks.run(instanceId, () => this.driver.destroyInstance(instanceId));
        destroyed.push(instanceId);
        this.log.warn({ instanceId, graceMs: this.graceMs }, "destroyed orphan instance (unwanted by the control plane past the grace period)");
      } catch (err) {
        this.log.error({ instanceId, err: String(err) }, "destroying orphan instance failed; retrying next round");
      }
    }
    const repaired: string[] = [];
    const running = actual.filter((a) => a.powerState === agent.PowerState.POWER_STATE_RUNNING && !plan.destroy.includes(a.instanceId)).map((a) => a.instanceId);
    let broken: string[] = [];
    try {
      broken = await this.driver.brokenInterfaces(running);
    } catch (err) {
      this.log.error({ err: String(err) }, "checking the NICs of running instances failed; retrying next round");
    }
    for (const instanceId of broken) {
      try {
        // The driver logs what it did; undefined: fixed meanwhile, or the instance stopped.
        if (await this.locks.run(instanceId, () => this.driver.repairInterface(instanceId))) repaired.push(instanceId);
      } catch (err) {
        this.log.error({ instanceId, err: String(err) }, "repairing the NIC of a running instance failed; retrying next round");
      }
    }
    return { destroyed, repaired };
  }
}
