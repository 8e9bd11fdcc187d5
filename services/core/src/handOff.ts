// Handing lifecycle steps to the workers after the commit that made them.
// Postgres is the truth: a step written there is never lost, because the
// sweeper enqueues every step in flight that has gone stale
// (lifecycle.ts, StaleSweeper). So an enqueue that fails or hangs (Redis
// down) must not turn a committed request into an error, nor hold its answer.
import type { LifecycleStep } from "@cirrus/common/queue";
import type { Core } from "./context.js";

/** How long a request waits for the queue before it answers without it. */
const ENQUEUE_WAIT_MS = 2000;

/**
 * Postcondition: the steps are queued, or their failure to be queued is
 * logged and the sweeper queues them later. Never rejects; resolves within
 * ENQUEUE_WAIT_MS (an enqueue still pending then may finish later: jobs are
 * idempotent per batch, so the sweeper's copy does not run twice).
 */
export async function handOff(core: Pick<Core, "lifecycle" | "log">, batches: readonly (readonly LifecycleStep[])[]): Promise<void> {
  if (batches.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ENQUEUE_WAIT_MS);
  });
  const steps = batches.reduce((n, b) => n + b.length, 0);
  try {
    const outcome = await Promise.race([core.lifecycle.enqueue(batches).then(() => "queued" as const), waited]);
    if (outcome === "timeout") core.log.warn({ steps, waitedMs: ENQUEUE_WAIT_MS }, "the lifecycle queue did not answer; the sweeper will queue these steps once they are stale");
  } catch (err) {
    core.log.warn({ steps, err }, "queueing lifecycle steps failed; the sweeper will queue them once they are stale");
  } finally {
    clearTimeout(timer);
  }
}
