import { z } from "zod";

const schema = z.object({
  DATABASE_URL: z.string().default("postgres://postgres@127.0.0.1:5432/cirrus"),
  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  CIRRUS_QUEUE_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]+$/).default("cirrus"),
  /** Lifecycle steps run in parallel per worker process. */
  CIRRUS_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(16),
  /** A job whose worker died is taken over after this long (BullMQ lock). */
  CIRRUS_JOB_LOCK_MS: z.coerce.number().int().min(1000).default(30_000),
  /** How often the sweeper re-enqueues steps that have no job (e.g. lost between commit and enqueue). */
  CIRRUS_SWEEP_MS: z.coerce.number().int().min(500).default(15_000),
  /** Only steps whose state is at least this old are swept. */
  CIRRUS_SWEEP_AFTER_MS: z.coerce.number().int().min(0).default(30_000),
  /** Per-call deadline for agent calls (a graceful stop can take a while). */
  CIRRUS_AGENT_TIMEOUT_MS: z.coerce.number().int().min(1000).default(180_000),
});

export type WorkerConfig = z.infer<typeof schema>;

export const loadWorkerConfig = (env: NodeJS.ProcessEnv = process.env): WorkerConfig => schema.parse(env);
