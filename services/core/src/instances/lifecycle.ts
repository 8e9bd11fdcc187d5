// The instance kind's lifecycle steps. A step re-reads the row; if its
// task_seq moved on, the step is superseded and does nothing. Otherwise it
// calls the host agent (whose calls are idempotent) and finishes with a
// compare-and-swap on (id, task_seq): launch/start → running, stop →
// stopped, reboot → running, terminate → terminated with what the instance
// held released in the same transaction (claims.ts), so it happens once.
// Steps of one job share a host; their agent calls run a few at a time and
// their compare-and-swaps are one statement per target state.
import pLimit from "p-limit";
import type { LifecycleStep } from "@cirrus/common/queue";
import type { Core, HostEndpoint } from "../context.js";
import { inTransaction, type Queryable } from "../db/tx.js";
import { handOff } from "../handOff.js";
import { markHostsChanged } from "../hostState.js";
import type { Lifecycle, StepResult } from "../lifecycle.js";
import { hostsConcernedByMembers } from "../network/affected.js";
import { releaseInstances, type HeldResources } from "./claims.js";
import type { InstanceStateName, InstanceTask } from "./model.js";
import { instanceSpecOf, instanceSpecSql, type InstanceSpecRow } from "./spec.js";

const KIND = "instance";
/** Agent calls in flight at once for one job (all on one host). */
const AGENT_CALLS_PER_JOB = 8;

interface StepRow extends InstanceSpecRow, HeldResources {
  state: InstanceStateName;
  task: InstanceTask | null;
  task_seq: number;
  stop_force: boolean;
  host_id: string;
  endpoint: string;
  secret: string;
}

/** An instance whose task was just set. */
export interface StepTarget {
  id: string;
  task_seq: number;
  host_id: string | null;
}

/** The steps for instances whose task was just set, one batch per host. */
export function instanceStepBatches(rows: readonly StepTarget[]): LifecycleStep[][] {
  const byHost = new Map<string, LifecycleStep[]>();
  for (const r of rows) {
    const key = r.host_id ?? "";
    byHost.set(key, [...(byHost.get(key) ?? []), { kind: KIND, id: r.id, seq: r.task_seq }]);
  }
  return [...byHost.values()];
}

/** Hands the steps of these instances to the workers (never failing the caller: see handOff). */
export async function enqueueInstanceSteps(core: Core, rows: readonly StepTarget[]): Promise<void> {
  await handOff(core, instanceStepBatches(rows));
}

async function load(db: Queryable, ids: readonly string[]): Promise<Map<string, StepRow>> {
  const { rows } = await db.query<StepRow>(
    `${instanceSpecSql("i.state, i.task, i.task_seq, i.stop_force, i.host_id, h.endpoint, h.secret")} JOIN hosts h ON h.id = i.host_id WHERE i.id = ANY($1)`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

const hostOf = (r: StepRow): HostEndpoint => ({ id: r.host_id, endpoint: r.endpoint, secret: r.secret });

/** Where each task leaves the instance when its host work succeeded. */
const DONE_STATE: Record<InstanceTask, InstanceStateName> = { launch: "running", start: "running", stop: "stopped", reboot: "running", terminate: "terminated" };

/**
 * The agent call of a step's task. CreateInstance serves launch and start:
 * it defines what is missing and starts what is shut off; a start reuses the
 * instance's disk and never gets a fresh one from the image.
 */
function hostWork(core: Core, r: StepRow): Promise<unknown> {
  const host = hostOf(r);
  switch (r.task!) {
    case "launch":
      return makeLaunchVolumes(core, host, r).then(() => core.agents.createInstance(host, instanceSpecOf(r)));
    case "start":
      return core.agents.createInstance(host, { ...instanceSpecOf(r), reuseRootDisk: true });
    case "stop":
      return core.agents.stopInstance(host, r.id, r.stop_force);
    case "reboot":
      return core.agents.rebootInstance(host, r.id);
    case "terminate":
      return core.agents.destroyInstance(host, r.id);
  }
}

/**
 * The volumes RunInstances' mappings gave the instance, made by its host
 * before the domain is defined with them (each create is idempotent, so a
 * retried launch makes only what is missing).
 */
async function makeLaunchVolumes(core: Core, host: HostEndpoint, r: StepRow): Promise<void> {
  for (const v of r.volumes) await core.agents.createVolume(host, { volumeId: v.id, sizeGib: v.size_gib, snapshotId: v.snapshot_id });
}

/** running after a launch, and its launch volumes attached, in one transaction. */
async function finishLaunch(core: Core, steps: readonly { id: string; task_seq: number }[]): Promise<Set<string>> {
  return inTransaction(core.db, async (db) => {
    const done = await finish(db, "running", steps);
    await db.query("UPDATE volumes SET attachment_state = 'attached' WHERE instance_id = ANY($1) AND attachment_state = 'attaching' AND task IS NULL", [[...done]]);
    return done;
  });
}

/**
 * Sets the stable `state` on every (id, seq) still current; returns the ids
 * it changed. A reason makes the StateReason Server.InternalError.
 */
async function finish(db: Queryable, state: Exclude<InstanceStateName, "terminated">, steps: readonly { id: string; task_seq: number }[], reason?: string): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE instances i SET state = $3, task = NULL, state_changed_at = now(), state_reason_code = $4, state_reason_message = $5
       FROM unnest($1::text[], $2::int[]) AS s(id, seq) WHERE i.id = s.id AND i.task_seq = s.seq AND i.task IS NOT NULL RETURNING i.id`,
    [steps.map((s) => s.id), steps.map((s) => s.task_seq), state, reason ? "Server.InternalError" : "", reason ? `Server.InternalError: ${reason}` : ""],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * terminated, and what the instances held released, in one transaction,
 * exactly once (the compare-and-swap guards the release). Returns the ids
 * it changed, and tells the hosts it concerns.
 */
async function finishTerminated(core: Core, steps: readonly { id: string; task_seq: number }[], reason?: string): Promise<Set<string>> {
  const { done, hosts, volumeSteps } = await inTransaction(core.db, async (db) => {
    const { rows } = await db.query<HeldResources>(
      // A reason set while shutting down (a failed launch terminated instead) is kept; a user's terminate clears it first.
      `UPDATE instances i SET state = 'terminated', task = NULL, terminated_at = now(), state_changed_at = now(),
              state_reason_code = coalesce(nullif(i.state_reason_code, ''), $3), state_reason_message = coalesce(nullif(i.state_reason_message, ''), $4)
         FROM unnest($1::text[], $2::int[]) AS s(id, seq) WHERE i.id = s.id AND i.task_seq = s.seq AND i.task IS NOT NULL
       RETURNING i.id, i.host_id, i.vcpus, i.memory_mib, i.disk_gib`,
      [steps.map((s) => s.id), steps.map((s) => s.task_seq), reason ? "Server.InternalError" : "Client.UserInitiatedShutdown",
        reason ? `Server.InternalError: ${reason}` : "Client.UserInitiatedShutdown: User initiated shutdown"],
    );
    const volumeSteps = await releaseInstances(db, rows);
    // Their hosts drop them, and rules naming their groups lose their addresses everywhere.
    return { done: rows, volumeSteps, hosts: await markHostsChanged(db, await hostsConcernedByMembers(db, rows.map((r) => r.id))) };
  });
  core.notifyHosts(hosts);
  await handOff(core, volumeSteps);
  return new Set(done.map((r) => r.id));
}

export const instanceLifecycle: Lifecycle = {
  kind: KIND,

  async run(core, steps) {
    const rows = await load(core.db, steps.map((s) => s.id));
    const results: StepResult[] = [];
    const current: { step: LifecycleStep; row: StepRow }[] = [];
    for (const step of steps) {
      const row = rows.get(step.id);
      if (!row || !row.task || row.task_seq !== step.seq) results.push({ step, outcome: "superseded" });
      else current.push({ step, row });
    }
    const succeeded: { step: LifecycleStep; row: StepRow }[] = [];
    const limit = pLimit(AGENT_CALLS_PER_JOB);
    await Promise.all(current.map((c) => limit(async () => {
      try {
        await hostWork(core, c.row);
        succeeded.push(c);
      } catch (error) {
        results.push({ step: c.step, outcome: "failed", error, permanent: core.agents.isPermanent(error) });
      }
    })));
    for (const task of Object.keys(DONE_STATE) as InstanceTask[]) {
      const batch = succeeded.filter((c) => c.row.task === task);
      if (batch.length === 0) continue;
      const state = DONE_STATE[task];
      const changed = state === "terminated" ? await finishTerminated(core, batch.map((c) => c.row))
        : task === "launch" ? await finishLaunch(core, batch.map((c) => c.row)) : await finish(core.db, state, batch.map((c) => c.row));
      for (const c of batch) results.push({ step: c.step, outcome: changed.has(c.row.id) ? "done" : "superseded" });
      if (task === "launch" || task === "start") await cleanUpAfterLateTerminate(core, batch.filter((c) => !changed.has(c.row.id)).map((c) => c.row));
    }
    return results;
  },

  async fail(core, steps, reason) {
    const rows = await load(core.db, steps.map((s) => s.id));
    const current = steps.flatMap((s) => {
      const r = rows.get(s.id);
      return r && r.task && r.task_seq === s.seq ? [r] : [];
    });
    const launches = current.filter((r) => r.task === "launch");
    // A launch that failed for good leaves nothing on the host and ends
    // terminated, its claims released, once its host confirms that nothing
    // is left; until then a domain may still use its address and MAC, so a
    // launch whose destroy fails too becomes a terminate that the sweeper
    // retries (its claims are released when that succeeds).
    const destroyed = await Promise.all(launches.map((r) => core.agents.destroyInstance(hostOf(r), r.id).then(() => true, () => false)));
    const gone = launches.filter((_, i) => destroyed[i]);
    if (gone.length) await finishTerminated(core, gone, reason);
    await terminateInstead(core, launches.filter((_, i) => !destroyed[i]), reason);
    // A failed start, stop or reboot returns to the last stable state with a StateReason.
    const starts = current.filter((r) => r.task === "start");
    if (starts.length) await finish(core.db, "stopped", starts, reason);
    const others = current.filter((r) => r.task === "stop" || r.task === "reboot");
    if (others.length) await finish(core.db, "running", others, reason);
    // A terminate never gives up: it stays in flight and the sweeper retries it.
    for (const r of current) core.log.error({ instanceId: r.id, task: r.task, reason }, "instance step failed for good");
  },

  async stale(core, olderThanMs, limit, after) {
    const { rows } = await core.db.query<StepTarget>(
      `SELECT id, task_seq, host_id FROM instances
        WHERE task IS NOT NULL AND id > $3 AND state_changed_at < now() - $1 * interval '1 millisecond' ORDER BY id LIMIT $2`,
      [olderThanMs, limit, after],
    );
    return { batches: instanceStepBatches(rows), last: rows.length === limit ? rows.at(-1)!.id : undefined };
  },
};

/** Failed launches whose host could not confirm their removal: shutting-down, with the reason, and a terminate step queued. */
async function terminateInstead(core: Core, steps: readonly { id: string; task_seq: number }[], reason: string): Promise<void> {
  if (steps.length === 0) return;
  const { rows } = await core.db.query<StepTarget>(
    `UPDATE instances i SET state = 'shutting-down', task = 'terminate', task_seq = i.task_seq + 1, state_changed_at = now(),
            state_reason_code = 'Server.InternalError', state_reason_message = $3
       FROM unnest($1::text[], $2::int[]) AS s(id, seq) WHERE i.id = s.id AND i.task_seq = s.seq AND i.task = 'launch'
     RETURNING i.id, i.task_seq, i.host_id`,
    [steps.map((s) => s.id), steps.map((s) => s.task_seq), `Server.InternalError: ${reason}`],
  );
  for (const r of rows) core.log.warn({ instanceId: r.id, reason }, "failed launch could not be removed from its host; terminating it instead, its address kept until the host confirms");
  await enqueueInstanceSteps(core, rows);
}

/**
 * Launches or starts that finished after a terminate superseded them: the
 * domain they made is destroyed, whether the terminate has finished or is
 * still shutting down (its own destroy may have run before this create on
 * the agent, and its compare-and-swap would then leave this domain behind).
 */
async function cleanUpAfterLateTerminate(core: Core, superseded: readonly StepRow[]): Promise<void> {
  if (superseded.length === 0) return;
  const now = await load(core.db, superseded.map((r) => r.id));
  for (const r of superseded) {
    const state = now.get(r.id)?.state;
    if (state === "terminated" || state === "shutting-down") await core.agents.destroyInstance(hostOf(r), r.id);
  }
}
