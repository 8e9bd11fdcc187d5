// One lifecycle per resource kind. Postgres holds each resource's intent (its
// task and task_seq); a lifecycle job carries steps `{kind, id, seq}` and the
// worker hands them here, where each kind's step handlers (beside the kind)
// drive them. Every step is idempotent and finishes with a compare-and-swap
// on (id, seq), so a retried, duplicated or superseded step changes nothing
// twice.
import type { LifecycleStep } from "@cirrus/common/queue";
import type { Core } from "./context.js";
import { instanceLifecycle } from "./instances/lifecycle.js";
import { snapshotLifecycle, volumeLifecycle } from "./volumes/lifecycle.js";

/** What became of one step. */
export type StepResult =
  | { step: LifecycleStep; outcome: "done" | "superseded" }
  | { step: LifecycleStep; outcome: "failed"; error: unknown; permanent: boolean };

export interface Lifecycle {
  readonly kind: string;
  /**
   * Drives the steps (all of this kind): the host work, then the stable
   * state, each behind its compare-and-swap. One step's failure is reported
   * in its result, never thrown; the others still complete.
   */
  run(core: Core, steps: readonly LifecycleStep[]): Promise<StepResult[]>;
  /**
   * For steps that failed for good (a permanent refusal, or retries used
   * up): leaves each resource in a stable state with the reason, releasing
   * what it held when the step was a creation.
   */
  fail(core: Core, steps: readonly LifecycleStep[], reason: string): Promise<void>;
  /**
   * Steps in flight whose state is older than `olderThanMs` (they may have
   * lost their job: the API died between commit and enqueue, or Redis was
   * down), in id order after the id `after` ("" from the start), at most
   * `limit`, in batches as they should be enqueued; `last` is the last id
   * returned when there may be more after it, undefined when the walk is done.
   */
  stale(core: Core, olderThanMs: number, limit: number, after: string): Promise<{ batches: LifecycleStep[][]; last?: string }>;
}

/** Every kind with a lifecycle, by kind name. */
export const LIFECYCLES: ReadonlyMap<string, Lifecycle> = new Map([instanceLifecycle, volumeLifecycle, snapshotLifecycle].map((l) => [l.kind, l]));

/** What a job did, for the worker to log and to decide on a retry. */
export interface JobReport {
  done: number;
  superseded: number;
  /** Steps failed for good and already settled by the lifecycle's `fail`. */
  settled: LifecycleStep[];
  /** Steps whose failure a retry may fix (empty on the last attempt: those are settled). */
  retry: { step: LifecycleStep; error: unknown }[];
}

function lifecycleOf(kind: string): Lifecycle {
  const l = LIFECYCLES.get(kind);
  if (!l) throw new Error(`no lifecycle for resource kind ${JSON.stringify(kind)}`);
  return l;
}

function reasonOf(err: unknown): string {
  const e = err as { details?: string; message?: string };
  return e?.details ?? e?.message ?? String(err);
}

/**
 * Runs one job's steps through their kind's lifecycle. Permanent failures,
 * and on the last attempt every failure, are settled with `fail`; the rest
 * are returned for the caller to retry (the steps that succeeded are
 * superseded by then, so a retry redoes only the failed ones).
 */
export async function runLifecycleJob(core: Core, steps: readonly LifecycleStep[], lastAttempt: boolean): Promise<JobReport> {
  const report: JobReport = { done: 0, superseded: 0, settled: [], retry: [] };
  const byKind = new Map<string, LifecycleStep[]>();
  for (const s of steps) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s]);
  for (const [kind, kindSteps] of byKind) {
    const lifecycle = lifecycleOf(kind);
    const results = await lifecycle.run(core, kindSteps);
    const settle = new Map<string, LifecycleStep[]>();
    for (const r of results) {
      if (r.outcome !== "failed") {
        report[r.outcome]++;
      } else if (r.permanent || lastAttempt) {
        const reason = reasonOf(r.error);
        settle.set(reason, [...(settle.get(reason) ?? []), r.step]);
        report.settled.push(r.step);
      } else {
        report.retry.push({ step: r.step, error: r.error });
      }
    }
    for (const [reason, failed] of settle) await lifecycle.fail(core, failed, reason);
  }
  return report;
}

/**
 * The sweeper's walk over stale steps of every kind (see Lifecycle.stale):
 * each round continues where the last one stopped, and starts over once a
 * kind is walked to its end, so however many steps are stuck (a dead
 * host's), every stale step is swept within ceil(stale / limit) rounds.
 */
export class StaleSweeper {
  private readonly cursors = new Map<string, string>();

  /** The next at most `limit` stale steps of each kind, in batches to enqueue. */
  async next(core: Core, olderThanMs: number, limit: number): Promise<LifecycleStep[][]> {
    const out: LifecycleStep[][] = [];
    for (const l of LIFECYCLES.values()) {
      const { batches, last } = await l.stale(core, olderThanMs, limit, this.cursors.get(l.kind) ?? "");
      this.cursors.set(l.kind, last ?? "");
      out.push(...batches);
    }
    return out;
  }
}
