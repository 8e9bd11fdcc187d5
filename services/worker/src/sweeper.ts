// Re-enqueues lifecycle steps that Postgres says are in flight but that may
// have no job (the API died between commit and enqueue, a job was dropped).
// Job ids are derived from (instance, task_seq), so a step that still has a
// job is not duplicated.
import type { LifecycleJob } from "@cirrus/common";
import type { Pool } from "pg";

export async function findStaleSteps(pool: Pool, olderThanMs: number): Promise<LifecycleJob[]> {
  const { rows } = await pool.query<{ id: string; task_seq: number }>(
    "SELECT id, task_seq FROM instances WHERE task IS NOT NULL AND state_changed_at < now() - $1 * interval '1 millisecond' ORDER BY state_changed_at LIMIT 10000",
    [olderThanMs],
  );
  return rows.map((r) => ({ instanceId: r.id, seq: r.task_seq }));
}
