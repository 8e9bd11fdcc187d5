// One lifecycle step of one instance, driven to completion. Postgres holds
// the intent (task, task_seq); a step re-reads it, calls the host agent (whose
// calls are idempotent), and finishes with a compare-and-swap on task_seq, so
// a retried, duplicated or superseded job changes nothing twice.
import { status, type ServiceError } from "@grpc/grpc-js";
import { instanceSpecOf, instanceSpecSql, type AgentClients, type HostEndpoint, type InstanceSpecRow, type LifecycleJob, type LifecycleTask, type Logger } from "@cirrus/common";
import type { Pool } from "pg";

export interface StepDeps {
  pool: Pool;
  agents: AgentClients;
  log: Logger;
}

interface StepRow extends InstanceSpecRow {
  state: string;
  task: LifecycleTask | null;
  task_seq: number;
  stop_force: boolean;
  host_id: string;
  endpoint: string;
  secret: string;
}

async function load(pool: Pool, id: string): Promise<StepRow | undefined> {
  const { rows } = await pool.query<StepRow>(`${instanceSpecSql("h.endpoint, h.secret")} JOIN hosts h ON h.id = i.host_id WHERE i.id = $1`, [id]);
  return rows[0];
}

const hostOf = (r: StepRow): HostEndpoint => ({ id: r.host_id, endpoint: r.endpoint, secret: r.secret });

/**
 * Errors that retrying cannot fix: the agent refused the request itself
 * (invalid spec or image), or there is no domain to reboot.
 */
export function isPermanent(err: unknown): boolean {
  const code = (err as Partial<ServiceError>).code;
  return code === status.FAILED_PRECONDITION || code === status.INVALID_ARGUMENT || code === status.NOT_FOUND;
}

/** Sets the stable state if this step is still the current one. Returns false when superseded. */
async function finish(pool: Pool, r: StepRow, state: string, reason?: string): Promise<boolean> {
  const res = await pool.query(
    `UPDATE instances SET state = $3, task = NULL, state_changed_at = now(),
            state_reason_code = $4, state_reason_message = $5
      WHERE id = $1 AND task_seq = $2 AND task IS NOT NULL`,
    [r.id, r.task_seq, state, reason ? "Server.InternalError" : "", reason ? `Server.InternalError: ${reason}` : ""],
  );
  return res.rowCount === 1;
}

/** terminated + capacity released, in one transaction, exactly once (the CAS guards the release). */
async function finishTerminated(pool: Pool, r: StepRow, reason?: string): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows: [done] } = await client.query<{ host_id: string; vcpus: number; memory_mib: number; disk_gib: number }>(
      `UPDATE instances SET state = 'terminated', task = NULL, terminated_at = now(), state_changed_at = now(),
              state_reason_code = $3, state_reason_message = $4
        WHERE id = $1 AND task_seq = $2 AND task IS NOT NULL RETURNING host_id, vcpus, memory_mib, disk_gib`,
      [r.id, r.task_seq, reason ? "Server.InternalError" : "Client.UserInitiatedShutdown", reason ? `Server.InternalError: ${reason}` : "Client.UserInitiatedShutdown: User initiated shutdown"],
    );
    if (done) {
      // Its private address goes back to the subnet; an elastic IP stays allocated but is disassociated (as in EC2).
      await client.query("UPDATE subnet_addresses SET instance_id = NULL WHERE instance_id = $1", [r.id]);
      await client.query("UPDATE addresses SET association_id = NULL, instance_id = NULL, private_ip = NULL WHERE instance_id = $1", [r.id]);
      await client.query(
        "UPDATE hosts SET used_vcpus = used_vcpus - $2, used_memory_mib = used_memory_mib - $3, used_disk_gib = used_disk_gib - $4 WHERE id = $1",
        [done.host_id, done.vcpus, done.memory_mib, done.disk_gib],
      );
    }
    await client.query("COMMIT");
    return done !== undefined;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export type StepOutcome = "done" | "superseded";

/** Runs the step; throws (to be retried) when the agent call fails. */
export async function runStep(d: StepDeps, job: LifecycleJob): Promise<StepOutcome> {
  const r = await load(d.pool, job.instanceId);
  if (!r || !r.task || r.task_seq !== job.seq) return "superseded";
  const host = hostOf(r);
  switch (r.task) {
    case "launch":
    case "start": {
      // CreateInstance is idempotent: it defines what is missing and starts
      // what is shut off, so start also repairs a domain removed by hand.
      await d.agents.createInstance(host, instanceSpecOf(r));
      if (await finish(d.pool, r, "running")) return "done";
      // Terminated while we were creating: make sure nothing is left behind.
      const now = await load(d.pool, r.id);
      if (now?.state === "terminated") await d.agents.destroyInstance(host, r.id);
      return "superseded";
    }
    case "stop":
      await d.agents.stopInstance(host, r.id, r.stop_force);
      return (await finish(d.pool, r, "stopped")) ? "done" : "superseded";
    case "reboot":
      await d.agents.rebootInstance(host, r.id);
      return (await finish(d.pool, r, "running")) ? "done" : "superseded";
    case "terminate":
      await d.agents.destroyInstance(host, r.id);
      return (await finishTerminated(d.pool, r)) ? "done" : "superseded";
  }
}

/**
 * Called when a step failed for good (permanent error or retries used up):
 * a failed launch ends terminated with its capacity released; a failed start,
 * stop or reboot returns to the last stable state with a StateReason.
 * A terminate never gives up: it stays in flight and the sweeper retries it.
 */
export async function failStep(d: StepDeps, job: LifecycleJob, err: unknown): Promise<void> {
  const r = await load(d.pool, job.instanceId);
  if (!r || !r.task || r.task_seq !== job.seq) return;
  const reason = (err as Partial<ServiceError>).details ?? (err as Error).message ?? "unknown error";
  switch (r.task) {
    case "launch":
      await d.agents.destroyInstance(hostOf(r), r.id).catch(() => undefined);
      await finishTerminated(d.pool, r, reason);
      return;
    case "start":
      await finish(d.pool, r, "stopped", reason);
      return;
    case "stop":
    case "reboot":
      await finish(d.pool, r, "running", reason);
      return;
    case "terminate":
      return;
  }
}
