// The lifecycle work queue (BullMQ on Redis) between the API, which enqueues
// after it commits, and the workers, whose sweeper re-enqueues what lost its
// job: both go through `LifecycleQueue.enqueue`, the one enqueue path.
// Postgres holds the intent (each resource's task and task_seq); a job only
// says "drive these steps". Its id is derived from the steps, so enqueueing
// the same batch twice (an API retry, the sweeper) runs it once while it
// waits or runs. Imported as @cirrus/common/queue so that processes without a
// queue (the agent, the CLI) never load BullMQ.
import { Queue, type ConnectionOptions } from "bullmq";

export const LIFECYCLE_QUEUE = "cirrus-lifecycle";

/** One step of one resource's lifecycle: drive resource `id` of `kind` through its task number `seq`. */
export interface LifecycleStep {
  kind: string;
  id: string;
  seq: number;
}

/** What one queue job carries: steps of one kind, run together (e.g. one launch's instances on one host). */
export interface LifecycleJobData {
  steps: LifecycleStep[];
}

/** Steps per job at most: bounds a job's run time and its retry cost. */
export const MAX_STEPS_PER_JOB = 500;

/** Every lifecycle job: retried with exponential backoff, removed when done so a re-add after completion is possible. */
export const lifecycleJobOptions = {
  attempts: 8,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: true,
  removeOnFail: true,
} as const;

/** The job id of a batch (BullMQ forbids ':' in custom ids). */
export function lifecycleJobId(steps: readonly LifecycleStep[]): string {
  const [first] = steps;
  if (!first) throw new Error("a lifecycle job needs at least one step");
  return steps.length === 1 ? `${first.kind}-${first.id}-${first.seq}` : `${first.kind}-${first.id}-${first.seq}-x${steps.length}`;
}

export class LifecycleQueue {
  readonly queue: Queue<LifecycleJobData>;

  constructor(connection: ConnectionOptions, prefix: string) {
    this.queue = new Queue<LifecycleJobData>(LIFECYCLE_QUEUE, { connection, prefix });
  }

  /**
   * Adds one job per batch (batches longer than MAX_STEPS_PER_JOB are
   * split). Resolves when Redis has every job.
   */
  async enqueue(batches: readonly (readonly LifecycleStep[])[]): Promise<void> {
    const jobs = batches.flatMap((steps) => {
      const out: LifecycleStep[][] = [];
      for (let i = 0; i < steps.length; i += MAX_STEPS_PER_JOB) out.push(steps.slice(i, i + MAX_STEPS_PER_JOB));
      return out;
    });
    for (let i = 0; i < jobs.length; i += 1000) {
      await this.queue.addBulk(jobs.slice(i, i + 1000).map((steps) => ({ name: "steps", data: { steps }, opts: { ...lifecycleJobOptions, jobId: lifecycleJobId(steps) } })));
    }
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/**
 * Logs a Redis connection's outages through `log` (ioredis otherwise prints
 * every failed reconnect to stderr): the first error of an outage, and when
 * the connection is ready again.
 */
export function logRedisOutages(redis: { on(event: "error", fn: (err: Error) => void): unknown; on(event: "ready", fn: () => void): unknown }, log: { warn(o: object, msg: string): void; info(o: object, msg: string): void }): void {
  let down = false;
  redis.on("error", (err) => {
    if (down) return;
    down = true;
    log.warn({ err: err.message }, "Redis connection lost; retrying (requests answer from Postgres, the sweeper queues their steps later)");
  });
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    log.info({}, "Redis connection restored");
  });
}
