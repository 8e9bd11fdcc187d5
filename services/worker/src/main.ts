// The worker service: consumes lifecycle jobs, drives each step through the
// host agents, and sweeps for steps that lost their job.
import { Queue, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { AgentClients, createLogger, LIFECYCLE_QUEUE, lifecycleJobId, lifecycleJobOptions, type LifecycleJob } from "@cirrus/common";
import { loadWorkerConfig } from "./config.js";
import { failStep, isPermanent, runStep, type StepDeps } from "./steps.js";
import { findStaleSteps } from "./sweeper.js";

const log = createLogger("worker");

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: config.CIRRUS_WORKER_CONCURRENCY + 2 });
  pool.on("error", (err) => log.error({ err }, "postgres pool error"));
  const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  const agents = new AgentClients(config.CIRRUS_AGENT_TIMEOUT_MS);
  const deps: StepDeps = { pool, agents, log };
  const queue = new Queue(LIFECYCLE_QUEUE, { connection, prefix: config.CIRRUS_QUEUE_PREFIX });

  const process_ = async (job: Job<LifecycleJob>) => {
    const jlog = log.child({ jobId: job.id, instanceId: job.data.instanceId });
    try {
      const outcome = await runStep({ ...deps, log: jlog }, job.data);
      jlog.info({ seq: job.data.seq, outcome, attempt: job.attemptsMade + 1 }, "step finished");
    } catch (err) {
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (isPermanent(err) || last) {
        jlog.error({ err: (err as Error).message, permanent: isPermanent(err) }, "step failed for good");
        await failStep({ ...deps, log: jlog }, job.data, err);
        return;
      }
      jlog.warn({ err: (err as Error).message, attempt: job.attemptsMade + 1 }, "step failed; will retry");
      throw err;
    }
  };
  const worker = new Worker<LifecycleJob>(LIFECYCLE_QUEUE, process_, {
    connection, prefix: config.CIRRUS_QUEUE_PREFIX, concurrency: config.CIRRUS_WORKER_CONCURRENCY,
    lockDuration: config.CIRRUS_JOB_LOCK_MS, stalledInterval: Math.max(1000, Math.floor(config.CIRRUS_JOB_LOCK_MS / 2)), maxStalledCount: 100,
  });
  worker.on("error", (err) => log.error({ err }, "worker error"));

  const sweep = async () => {
    try {
      const stale = await findStaleSteps(pool, config.CIRRUS_SWEEP_AFTER_MS);
      if (stale.length) {
        await queue.addBulk(stale.map((data) => ({ name: "step", data, opts: { ...lifecycleJobOptions, jobId: lifecycleJobId(data) } })));
        log.debug({ count: stale.length }, "swept in-flight steps");
      }
    } catch (err) {
      log.error({ err }, "sweep failed");
    }
  };
  await sweep();
  const timer = setInterval(() => void sweep(), config.CIRRUS_SWEEP_MS);
  log.info({ concurrency: config.CIRRUS_WORKER_CONCURRENCY, prefix: config.CIRRUS_QUEUE_PREFIX }, "worker running");

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    clearInterval(timer);
    await worker.close();
    await queue.close();
    agents.close();
    connection.disconnect();
    await pool.end();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "worker failed to start");
  process.exit(1);
});
