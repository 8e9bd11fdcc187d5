// Start/Stop/Reboot/TerminateInstances. All-or-nothing per call: the rows are
// locked, every instance is checked against the transition table, and only
// then are the new states and tasks written (one transaction); the workers
// then drive each task (lifecycle.ts).
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { inTransaction } from "../db/tx.js";
import { findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { requireNonEmpty } from "../validate.js";
import { enqueueInstanceSteps } from "./lifecycle.js";
import { instanceKind, stateOf, type InstanceStateName, type InstanceTask } from "./model.js";

export type InstanceAction = "start" | "stop" | "reboot" | "terminate";

/** What an action does to an instance: nothing, a new task, or an error. */
export type Transition = { kind: "noop" } | { kind: "task"; state: InstanceStateName; task: InstanceTask } | { kind: "invalid" };

/**
 * The instance kind's transition table. A step already in flight only
 * yields to terminate, which supersedes it (the superseded job sees a newer
 * task_seq and stops).
 */
export function transitionFor(action: InstanceAction, state: InstanceStateName, task: InstanceTask | null): Transition {
  const idle = task === null;
  switch (action) {
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

const verb: Record<InstanceAction, string> = { start: "started", stop: "stopped", reboot: "rebooted", terminate: "terminated" };

/** Applies `action` to every instance; returns the state changes in request order. */
export async function changeInstances(ctx: RequestContext, action: InstanceAction, ids: readonly string[], opts: { force?: boolean } = {}): Promise<compute.InstanceStateChange[]> {
  requireNonEmpty("InstanceId", ids);
  const unique = [...new Set(ids)];
  const { changes, started } = await inTransaction(ctx.db, async (db) => {
    const rows = await findOwned(ctx, db, instanceKind, unique, { lock: true });
    const plans = rows.map((r) => ({ row: r, t: transitionFor(action, r.state, r.task) }));
    const bad = plans.find((p) => p.t.kind === "invalid");
    if (bad) {
      const busy = bad.row.task && bad.row.state !== "terminated" ? ` while a ${bad.row.task} is in progress` : "";
      throw new Ec2Error("IncorrectInstanceState", `The instance '${bad.row.id}' is not in a state from which it can be ${verb[action]} (state: ${bad.row.state}${busy}).`);
    }
    const byId = new Map<string, compute.InstanceStateChange>();
    for (const { row, t } of plans) {
      byId.set(row.id, { InstanceId: row.id, PreviousState: stateOf(row.state), CurrentState: stateOf(t.kind === "task" ? t.state : row.state) });
    }
    // One action gives every instance that needs work the same new state and task: one statement.
    const target = plans.find((p) => p.t.kind === "task")?.t;
    const { rows: started } = target?.kind === "task"
      ? await db.query<{ id: string; task_seq: number; host_id: string | null }>(
        `UPDATE instances SET state = $2, task = $3, task_seq = task_seq + 1, stop_force = $4, state_changed_at = now(),
                state_reason_code = '', state_reason_message = '',
                state_transition_reason = CASE WHEN $3 IN ('stop', 'terminate') THEN 'User initiated (' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' GMT)' ELSE state_transition_reason END
          WHERE id = ANY($1) RETURNING id, task_seq, host_id`,
        [plans.filter((p) => p.t.kind === "task").map((p) => p.row.id), target.state, target.task, opts.force === true],
      )
      : { rows: [] };
    return { changes: unique.map((id) => byId.get(id)!), started };
  });
  await enqueueInstanceSteps(ctx, started);
  if (started.length) ctx.log.info({ action, instanceIds: started.map((s) => s.id) }, "instance state change requested");
  return changes;
}

const stateChange = <Req extends { InstanceIds: string[] }, Res>(o: {
  name: string;
  summary: string;
  action: InstanceAction;
  request: AnyOperation["request"];
  response: AnyOperation["response"];
  wrap: (changes: compute.InstanceStateChange[]) => Res;
  force?: (req: Req) => boolean;
}): AnyOperation =>
  defineOperation<Req, Res>({
    name: o.name, summary: o.summary, request: o.request, response: o.response, mutates: true, kinds: ["instance"],
    handler: async (ctx, req) => o.wrap(await changeInstances(ctx, o.action, req.InstanceIds, { force: o.force?.(req) ?? false })),
  });

export const instanceStateOperations: AnyOperation[] = [
  stateChange<compute.StartInstancesRequest, compute.StartInstancesResponse>({
    name: "StartInstances", summary: "Start stopped instances", action: "start",
    request: compute.StartInstancesRequest, response: compute.StartInstancesResponse, wrap: (c) => ({ StartingInstances: c }),
  }),
  stateChange<compute.StopInstancesRequest, compute.StopInstancesResponse>({
    name: "StopInstances", summary: "Stop running instances", action: "stop",
    request: compute.StopInstancesRequest, response: compute.StopInstancesResponse, wrap: (c) => ({ StoppingInstances: c }), force: (r) => r.Force,
  }),
  stateChange<compute.RebootInstancesRequest, compute.RebootInstancesResponse>({
    name: "RebootInstances", summary: "Reboot running instances", action: "reboot",
    request: compute.RebootInstancesRequest, response: compute.RebootInstancesResponse, wrap: () => ({}),
  }),
  stateChange<compute.TerminateInstancesRequest, compute.TerminateInstancesResponse>({
    name: "TerminateInstances", summary: "Terminate instances", action: "terminate",
    request: compute.TerminateInstancesRequest, response: compute.TerminateInstancesResponse, wrap: (c) => ({ TerminatingInstances: c }),
  }),
];
