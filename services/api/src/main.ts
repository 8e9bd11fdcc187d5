// The API service: compute API (gRPC, with health and reflection) and the
// agent-facing HostControl API, over one domain layer backed by Postgres,
// handing lifecycle work to the workers through BullMQ.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { Queue } from "bullmq";
import { HealthImplementation } from "grpc-health-check";
import { Redis } from "ioredis";
import pg from "pg";
import { AgentClients, createLogger, LIFECYCLE_QUEUE, lifecycleJobId, lifecycleJobOptions } from "@cirrus/common";
import { agent, compute, computeProtoFile, protoRoot } from "@cirrus/proto";
import { loadApiConfig } from "./config.js";
import { migrate } from "./db/migrate.js";
import type { DomainContext } from "./domain/context.js";
import { loadInstanceTypes } from "./domain/instanceTypes.js";
import { computeHandlers } from "./grpc/computeServer.js";
import { hostControlHandlers } from "./grpc/hostControlServer.js";
import { syncAddressPool } from "./domain/network/addresses.js";
import { ensureDefaultNetwork } from "./domain/network/vpcs.js";
import { HostNotifier } from "./hostNotifier.js";

const log = createLogger("api");

function bind(server: Server, addr: string): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(addr, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
}

async function main(): Promise<void> {
  const config = loadApiConfig();
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 20 });
  pool.on("error", (err) => log.error({ err }, "postgres pool error"));
  await migrate(pool, log);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue(LIFECYCLE_QUEUE, { connection: redis, prefix: config.CIRRUS_QUEUE_PREFIX });
  const agents = new AgentClients();
  const notifier = new HostNotifier(pool, config, agents, log);
  const ctx: DomainContext = {
    pool, config, log,
    notifyHosts: (hostIds) => notifier.notify(hostIds),
    instanceTypes: loadInstanceTypes(config.CIRRUS_INSTANCE_TYPES_FILE),
    enqueue: async (jobs) => {
      for (let i = 0; i < jobs.length; i += 1000) {
        await queue.addBulk(jobs.slice(i, i + 1000).map((data) => ({ name: "step", data, opts: { ...lifecycleJobOptions, jobId: lifecycleJobId(data) } })));
      }
    },
  };

  await ensureDefaultNetwork(ctx);
  await syncAddressPool(ctx);

  const api = new Server();
  api.addService(compute.ComputeService, computeHandlers(ctx, agents));
  const health = new HealthImplementation({ "": "SERVING", "cirrus.compute.v1.Compute": "SERVING" });
  health.addToServer(api);
  new ReflectionService(loadSync(computeProtoFile, { includeDirs: [protoRoot] })).addToServer(api);
  const apiPort = await bind(api, config.CIRRUS_API_LISTEN);

  const control = new Server();
  control.addService(agent.HostControlService, hostControlHandlers(ctx));
  const controlPort = await bind(control, config.CIRRUS_CONTROL_LISTEN);
  log.info({ listen: config.CIRRUS_API_LISTEN, port: apiPort, controlListen: config.CIRRUS_CONTROL_LISTEN, controlPort }, "api serving");

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    health.setStatus("", "NOT_SERVING");
    await Promise.all([new Promise((r) => api.tryShutdown(r)), new Promise((r) => control.tryShutdown(r))]);
    await notifier.idle();
    agents.close();
    await queue.close();
    redis.disconnect();
    await pool.end();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "api failed to start");
  process.exit(1);
});
