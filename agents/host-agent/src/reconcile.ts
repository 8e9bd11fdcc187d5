// The agent reconciles, it does not just obey (design principle 5): after each
// heartbeat it compares what the host has with what the control plane wants.
// What the control plane did not ask for is removed only on positive evidence
// (docs/ARCHITECTURE.md, "Orphans"): unwanted for a grace period, and then
// either terminated on this host by the control plane's own word, or unknown
// to it while this agent's records say it made the instance for this host.
// Anything else (another host's instance, one the agent did not make) is
// kept and reported. Removal moves the files to a quarantine directory,
// deleted only after a retention period. It also repairs the NICs of running
// instances whose tap device was deleted or moved behind its back
// (HypervisorDriver.repairInterface), after the host network's own sync has
// put bridges, DHCP and rules back.
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
  /** Ids present and unwanted continuously for at least graceMs: candidates for removal, on evidence. */
  candidates: string[];
  /** The timers to pass to the next plan: exactly the ids present and unwanted now. */
  orphanSince: Map<string, number>;
}

/**
 * Pure. An id present on the host (domain or artifact) and not desired is
 * timed from the first plan that saw it so; once unwanted for graceMs it is
 * a candidate. An id that is desired again, or gone, loses its timer, so it
 * would start over. A desired id is never a candidate.
 */
export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const orphanSince = new Map<string, number>();
  const candidates: string[] = [];
  for (const id of new Set([...input.actual, ...input.artifacts])) {
    if (input.desired.has(id)) continue;
    const since = input.orphanSince.get(id) ?? input.now;
    orphanSince.set(id, since);
    if (input.now - since >= input.graceMs) candidates.push(id);
  }
  return { candidates: candidates.sort(), orphanSince };
}

/** Why an orphan may be removed, from the control plane's verdict and the agent's own record. */
export function orphanDecision(verdict: agent.InstanceVerdict | undefined, madeHere: boolean): { remove: boolean; why: string } {
  const V = agent.InstanceVerdict;
  switch (verdict) {
    case V.INSTANCE_VERDICT_TERMINATED:
      return { remove: true, why: "terminated on this host" };
    case V.INSTANCE_VERDICT_UNKNOWN:
      return madeHere
        ? { remove: true, why: "unknown to the control plane, and made by this agent for this host" }
        : { remove: false, why: "unknown to the control plane, and not made by this agent for this host" };
    case V.INSTANCE_VERDICT_KEEP:
      return { remove: false, why: "the control plane knows it and has not terminated it here (another host's, or not terminated)" };
    default:
      return { remove: false, why: "the control plane gave no verdict" };
  }
}

/** What the agent asks and knows before removing anything (the control plane, and its own records). */
export interface OrphanEvidence {
  /** The control plane's verdict on each id (at most MAX_CLASSIFY). Throws when it cannot be asked. */
  classify(instanceIds: readonly string[]): Promise<Map<string, agent.InstanceVerdict>>;
  /** Whether this agent's records say it made the instance for the host it is registered as now. */
  madeHere(instanceId: string): Promise<boolean>;
  /** Drops the agent's record of an instance it removed. */
  forget(instanceId: string): Promise<void>;
}

/** How many ids one ClassifyInstances call may carry (HostControl's limit). */
export const MAX_CLASSIFY = 1000;
/** How long a kept orphan waits before the control plane is asked about it again. */
const RECHECK_KEPT_MS = 60_000;

export interface ReconcilerOptions {
  driver: HypervisorDriver;
  locks: KeyedMutex;
  evidence: OrphanEvidence;
  /** How long an instance must be unwanted before it is considered at all. */
  graceMs: number;
  /** How long quarantined files are kept before they are deleted. */
  quarantineRetentionMs: number;
  log: Logger;
  now?: () => number;
}

/** What one round did. */
export interface RoundReport {
  /** Orphans moved to quarantine. */
  quarantined: string[];
  /** Orphans past their grace that the evidence says to keep (asked about this round). */
  kept: string[];
  /** Running instances whose NIC was repaired. */
  repaired: string[];
}

/** Runs the planner after each heartbeat and carries its timers from one round to the next. */
export class Reconciler {
  private orphanSince = new Map<string, number>();
  /** Orphans the evidence said to keep, until when that answer stands. */
  private keptUntil = new Map<string, number>();
  private lastPurge = Number.NEGATIVE_INFINITY;
  private readonly now: () => number;

  constructor(private readonly opts: ReconcilerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * One round: `actual` is what the heartbeat reported, `state` the host
   * state applied last (undefined until the control plane sent one: then
   * nothing is known to be unwanted, and nothing is removed). Asks about the
   * orphans past their grace, quarantines those the evidence allows, then
   * repairs the NICs of the other running instances where the driver finds
   * them broken, each under the same per-instance lock the gRPC server uses,
   * and purges quarantined files past their retention now and then. One
   * failure does not stop the rest; it is retried next round.
   */
  async round(actual: readonly DomainStatus[], state: agent.HostState | undefined): Promise<RoundReport> {
    const { driver, locks, log } = this.opts;
    const now = this.now();
    const plan = state
      ? planReconcile({
        actual: actual.map((a) => a.instanceId),
        artifacts: await driver.listArtifacts(),
        desired: new Set(state.instances.map((spec) => spec.instanceId)),
        orphanSince: this.orphanSince,
        now,
        graceMs: this.opts.graceMs,
      })
      : { candidates: [], orphanSince: new Map<string, number>() };
    this.orphanSince = plan.orphanSince;
    for (const id of this.keptUntil.keys()) if (!plan.orphanSince.has(id)) this.keptUntil.delete(id);
    const { quarantined, kept } = await this.removeOrphans(plan.candidates.filter((id) => (this.keptUntil.get(id) ?? 0) <= now), now);
    if (now - this.lastPurge >= Math.min(this.opts.quarantineRetentionMs / 10, 10 * 60_000)) {
      try {
        const purged = await driver.purgeQuarantine(this.opts.quarantineRetentionMs);
        this.lastPurge = now;
        if (purged.length) log.info({ files: purged, retentionMs: this.opts.quarantineRetentionMs }, "deleted quarantined files past their retention");
      } catch (err) {
        log.error({ err: String(err) }, "purging the quarantine failed; retrying next round");
      }
    }
    const repaired: string[] = [];
    const running = actual.filter((a) => a.powerState === agent.PowerState.POWER_STATE_RUNNING && !plan.candidates.includes(a.instanceId)).map((a) => a.instanceId);
    let broken: string[] = [];
    try {
      broken = await driver.brokenInterfaces(running);
    } catch (err) {
      log.error({ err: String(err) }, "checking the NICs of running instances failed; retrying next round");
    }
    for (const instanceId of broken) {
      try {
        // The driver logs what it did; undefined: fixed meanwhile, or the instance stopped.
        if (await locks.run(instanceId, () => driver.repairInterface(instanceId))) repaired.push(instanceId);
      } catch (err) {
        log.error({ instanceId, err: String(err) }, "repairing the NIC of a running instance failed; retrying next round");
      }
    }
    return { quarantined, kept, repaired };
  }

  private async removeOrphans(candidates: readonly string[], now: number): Promise<{ quarantined: string[]; kept: string[] }> {
    const { driver, locks, evidence, log } = this.opts;
    const quarantined: string[] = [];
    const kept: string[] = [];
    if (candidates.length === 0) return { quarantined, kept };
    const batch = candidates.slice(0, MAX_CLASSIFY);
    let verdicts: Map<string, agent.InstanceVerdict>;
    try {
      verdicts = await evidence.classify(batch);
    } catch (err) {
      log.error({ err: String(err), orphans: batch.length }, "asking the control plane about orphans failed; removing nothing, retrying next round");
      return { quarantined, kept };
    }
    for (const instanceId of batch) {
      try {
        const { remove, why } = orphanDecision(verdicts.get(instanceId), await evidence.madeHere(instanceId));
        if (!remove) {
          kept.push(instanceId);
          this.keptUntil.set(instanceId, now + RECHECK_KEPT_MS);
          log.warn({ instanceId, why, recheckInMs: RECHECK_KEPT_MS }, "kept an instance the control plane did not ask for");
          continue;
        }
        await locks.run(instanceId, () => driver.quarantineInstance(instanceId));
        await evidence.forget(instanceId);
        quarantined.push(instanceId);
        log.warn({ instanceId, why, graceMs: this.opts.graceMs, retentionMs: this.opts.quarantineRetentionMs }, "removed an orphan instance; its files are in quarantine");
      } catch (err) {
        log.error({ instanceId, err: String(err) }, "removing an orphan instance failed; retrying next round");
      }
    }
    return { quarantined, kept };
  }
}
