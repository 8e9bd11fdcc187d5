// The worker service: consumes lifecycle jobs and hands their steps to the
// core's lifecycles (services/core/src/lifecycle.ts), sweeps for steps that
// lost their job, and audits host capacity against the instances.
import { Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { AgentClients, clusterChannelCredentials, CONTROL_PLANE_CN, createLogger, issueCredential } from "@cirrus/common";
import { LIFECYCLE_QUEUE, LifecycleQueue, logRedisOutages, type LifecycleJobData } from "@cirrus/common/queue";
import { auditCapacity, clusterCa, createCore, loadInstanceTypes, openPool, runLifecycleJob, StaleSweeper } from "@cirrus/core";
import { loadWorkerConfig } from "./config.js";

const log = createLogger("worker");
/** Steps the sweeper re-enqueues per round at most. */
const SWEEP_LIMIT = 10_000;

/** Runs `fn` every `ms`, never two at once, logging failures; returns a stopper. */
function every(ms: number, what: string, fn: () => Promise<void>): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    fn().catch((err: unknown) => log.error({ err }, `${what} failed`)).finally(() => (running = false));
  }, ms);
  return () => clearInterval(timer);
}

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const db = openPool(config, { max: config.CIRRUS_WORKER_CONCURRENCY + 4, applicationName: "cirrus-worker", log });
  const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  logRedisOutages(connection, log);
  const queue = new LifecycleQueue(connection, config.CIRRUS_QUEUE_PREFIX);
  // The control plane's TLS credential towards agents (no names: it only dials).
  const ca = await clusterCa(db);
  const agents = new AgentClients(clusterChannelCredentials(ca.certPem, await issueCredential(ca, CONTROL_PLANE_CN, [])), config.CIRRUS_AGENT_TIMEOUT_MS);
  const core = createCore({ db, config, log, instanceTypes: loadInstanceTypes(config.CIRRUS_INSTANCE_TYPES_FILE), lifecycle: queue, agents });

  const process_ = async (job: Job<LifecycleJobData>) => {
    const jlog = log.child({ jobId: job.id });
    const attempt = job.attemptsMade + 1;
    const report = await runLifecycleJob({ ...core, log: jlog }, job.data.steps, attempt >= (job.opts.attempts ?? 1));
    jlog.info({ steps: job.data.steps.length, done: report.done, superseded: report.superseded, failed: report.settled.length, retrying: report.retry.length, attempt }, "job finished");
    if (report.retry.length) {
      const [first] = report.retry;
      jlog.warn({ retrying: report.retry.map((r) => r.step.id), err: (first!.error as Error).message, attempt }, "steps failed; the job will retry");
      throw first!.error;
    }
  };
  const worker = new Worker<LifecycleJobData>(LIFECYCLE_QUEUE, process_, {
    connection, prefix: config.CIRRUS_QUEUE_PREFIX, concurrency: config.CIRRUS_WORKER_CONCURRENCY,
    lockDuration: config.CIRRUS_JOB_LOCK_MS, stalledInterval: Math.max(1000, Math.floor(config.CIRRUS_JOB_LOCK_MS / 2)), maxStalledCount: 100,
  });
  worker.on("error", (err) => log.error({ err }, "worker error"));

  const sweeper = new StaleSweeper();
  const sweep = async () => {
    const batches = await sweeper.next(core, config.CIRRUS_SWEEP_AFTER_MS, SWEEP_LIMIT);
    if (batches.length) {
      await queue.enqueue(batches);
      log.debug({ steps: batches.reduce((n, b) => n + b.length, 0) }, "swept in-flight steps");
    }
  };
  await sweep().catch((err: unknown) => log.error({ err }, "sweep failed"));
  const stopSweeping = every(config.CIRRUS_SWEEP_MS, "sweep", sweep);
  const stopAuditing = every(config.CIRRUS_CAPACITY_AUDIT_MS, "capacity audit", async () => void (await auditCapacity(db, log)));
  log.info({ concurrency: config.CIRRUS_WORKER_CONCURRENCY, prefix: config.CIRRUS_QUEUE_PREFIX }, "worker running");

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    stopSweeping();
    stopAuditing();
    await worker.close();
    await core.idle();
    await queue.close();
    agents.close();
    connection.disconnect();
    await db.end();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "worker failed to start");
  process.exit(1);
});
