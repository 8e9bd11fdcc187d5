// Worker configuration from the environment, validated at start-up.
import { connectionSchema, coreConfigSchema, withZones } from "@cirrus/core";
import { z } from "zod";

const schema = connectionSchema.merge(coreConfigSchema).extend({
  /** Lifecycle jobs run in parallel per worker process (each job drives the steps of one host). */
  CIRRUS_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(16),
  /** A job whose worker died is taken over after this long (BullMQ lock). */
  CIRRUS_JOB_LOCK_MS: z.coerce.number().int().min(1000).default(30_000),
  /** How often the sweeper re-enqueues steps that have no job (e.g. lost between commit and enqueue). */
  CIRRUS_SWEEP_MS: z.coerce.number().int().min(500).default(15_000),
  /** Only steps whose state is at least this old are swept. */
  CIRRUS_SWEEP_AFTER_MS: z.coerce.number().int().min(0).default(30_000),
  /** How often every host's used capacity is recomputed from its instances (drift is logged and repaired). */
  CIRRUS_CAPACITY_AUDIT_MS: z.coerce.number().int().min(1000).default(300_000),
  /** Per-call deadline for agent calls (a graceful stop can take a while). */
  CIRRUS_AGENT_TIMEOUT_MS: z.coerce.number().int().min(1000).default(180_000),
});

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

export const loadWorkerConfig = (env: NodeJS.ProcessEnv = process.env) => withZones(schema.parse(env));
