// The lifecycle work queue shared by the API (producer) and the workers
// (consumers). Postgres holds the intent (instances.task, task_seq); a job only
// says "drive instance X's task number N". The job id is derived from both, so
// enqueueing the same step twice (API retry, sweeper) runs it once.
export const LIFECYCLE_QUEUE = "cirrus-lifecycle";

export type LifecycleTask = "launch" | "start" | "stop" | "reboot" | "terminate";

export interface LifecycleJob {
  instanceId: string;
  seq: number;
}

/** BullMQ job id for one step (BullMQ forbids ':' in custom ids). */
export function lifecycleJobId(job: LifecycleJob): string {
  return `${job.instanceId}-${job.seq}`;
}

/** BullMQ options every lifecycle job is added with: retried with exponential backoff, removed when done so a re-add after completion is possible. */
export const lifecycleJobOptions = {
  attempts: 8,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: true,
  removeOnFail: true,
} as const;
