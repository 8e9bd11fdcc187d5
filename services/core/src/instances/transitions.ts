// Start/Stop/Reboot/TerminateInstances. All-or-nothing per call: the rows are
// locked, every instance is checked, and only then are the new states and
// tasks written (one transaction); the workers then drive each task.
import { Ec2Error, type LifecycleJob, type LifecycleTask } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "../context.js";
import { inTransaction } from "../../db/tx.js";
import { requireIds, requireNonEmpty } from "../validate.js";
import { requireAllFound } from "./describe.js";
import { stateOf, type InstanceRow, type InstanceStateName } from "./model.js";

export type Operation = "start" | "stop" | "reboot" | "terminate";

/** What an operation does to an instance: nothing, a new task, or an error. */
export type Transition = { kind: "noop" } | { kind: "task"; state: InstanceStateName; task: LifecycleTask } | { kind: "invalid" };

/**
 * The transition table. A step already in flight only yields to terminate,
 * which supersedes it (the superseded job sees a newer task_seq and stops).
 */
export function transitionFor(op: Operation, state: InstanceStateName, task: LifecycleTask | null): Transition {
  const idle = task === null;
  switch (op) {
    case "stop":
      if (state === "running" && idle) return { kind: "task", state: "stopping", task: "stop" };
      return state === "stopped" || state === "stopping" ? { kind: "noop" } : { kind: "invalid" };
    case "start":
      if (state === "stopped" && idle) return { kind: "task", state: "pending", task: "start" };
      return state === "running" || state === "pending" ? { kind: "noop" } : { kind: "invalid" };
    case "reboot":
      if (state === "running" && idle) return { kind: "task", state: "running", task: "reboot" };
      return state === "running" && task === "reboot" ? { kind: "noop" } : { kind: "invalid" };
    case "terminate":
      return state === "terminated" || state === "shutting-down" ? { kind: "noop" } : { kind: "task", state: "shutting-down", task: "terminate" };
  }
}

const verb: Record<Operation, string> = { start: "started", stop: "stopped", reboot: "rebooted", terminate: "terminated" };

/** Applies `op` to every instance; returns the state changes in request order. */
export async function changeInstances(ctx: DomainContext, op: Operation, ids: readonly string[], opts: { force?: boolean } = {}): Promise<compute.InstanceStateChange[]> {
  requireNonEmpty("InstanceId", ids);
  requireIds("i", ids);
  const unique = [...new Set(ids)];
  const { changes, jobs } = await inTransaction(ctx.pool, async (db) => {
    const { rows } = await db.query<InstanceRow>(
      "SELECT * FROM instances WHERE id = ANY($1) AND owner_id = $2 ORDER BY id FOR UPDATE",
      [unique, ctx.config.CIRRUS_ACCOUNT_ID],
    );
    requireAllFound(unique, rows);
    const plans = rows.map((r) => ({ row: r, t: transitionFor(op, r.state, r.task) }));
    const bad = plans.find((p) => p.t.kind === "invalid");
    if (bad) {
      const busy = bad.row.task && bad.row.state !== "terminated" ? ` while a ${bad.row.task} is in progress` : "";
      throw new Ec2Error("IncorrectInstanceState", `The instance '${bad.row.id}' is not in a state from which it can be ${verb[op]} (state: ${bad.row.state}${busy}).`);
    }
    const byId = new Map<string, compute.InstanceStateChange>();
    for (const { row, t } of plans) {
      byId.set(row.id, { InstanceId: row.id, PreviousState: stateOf(row.state), CurrentState: stateOf(t.kind === "task" ? t.state : row.state) });
    }
    // One operation gives every instance that needs work the same new state and task: one statement.
    const target = plans.find((p) => p.t.kind === "task")?.t;
    const { rows: started } = target?.kind === "task"
      ? await db.query<{ id: string; task_seq: number }>(
        `UPDATE instances SET state = $2, task = $3, task_seq = task_seq + 1, stop_force = $4, state_changed_at = now(),
                state_reason_code = '', state_reason_message = '',
                state_transition_reason = CASE WHEN $3 IN ('stop', 'terminate') THEN 'User initiated (' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' GMT)' ELSE state_transition_reason END
          WHERE id = ANY($1) RETURNING id, task_seq`,
        [plans.filter((p) => p.t.kind === "task").map((p) => p.row.id), target.state, target.task, opts.force === true],
      )
      : { rows: [] };
    const jobs: LifecycleJob[] = started.map((r) => ({ instanceId: r.id, seq: r.task_seq }));
    return { changes: unique.map((id) => byId.get(id)!), jobs };
  });
  await ctx.enqueue(jobs);
  if (jobs.length) ctx.log.info({ op, instanceIds: jobs.map((j) => j.instanceId) }, "instance state change requested");
  return changes;
}
