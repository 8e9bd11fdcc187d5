// The API service: the compute API (gRPC, with health and reflection) and,
// on a thread of its own (hostControl/start.ts), the agent-facing HostControl
// API: thin adapters over the core, backed by Postgres, handing lifecycle
// work to the workers through BullMQ.
import { Server } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { Redis } from "ioredis";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { AgentClients, clusterChannelCredentials, CONTROL_PLANE_CN, createLogger, issueCredential } from "@cirrus/common";
import { LifecycleQueue, logRedisOutages } from "@cirrus/common/queue";
import { clusterCa, createCore, ensureDefaultNetwork, loadInstanceTypes, migrate, openPool, syncAddressPool, type Principal } from "@cirrus/core";
import { compute, computeProtoFile, protoRoot } from "@cirrus/proto";
import { controlNames, loadApiConfig } from "./config.js";
import { computeImplementation } from "./grpc/computeServer.js";
import { bind } from "./grpc/bind.js";
import { startHostControl } from "./hostControl/start.js";

const log = createLogger("api");

async function main(): Promise<void> {
  const config = loadApiConfig();
  const db = openPool(config, { max: 20, applicationName: "cirrus-api", log });
  await migrate(db, log);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  logRedisOutages(redis, log);
  const queue = new LifecycleQueue(redis, config.CIRRUS_QUEUE_PREFIX);
  // The cluster CA; agents get its certificate from the file (CIRRUS_CONTROL_CA).
  const ca = await clusterCa(db);
  await mkdir(dirname(config.CIRRUS_CA_CERT_FILE), { recursive: true });
  await writeFile(config.CIRRUS_CA_CERT_FILE, ca.certPem, { mode: 0o644 });
  const own = await issueCredential(ca, CONTROL_PLANE_CN, controlNames(config));
  const agents = new AgentClients(clusterChannelCredentials(ca.certPem, own));
  const core = createCore({ db, config, log, instanceTypes: loadInstanceTypes(config.CIRRUS_INSTANCE_TYPES_FILE), lifecycle: queue, agents });
  // Until accounts and signatures arrive, every compute call acts as the default account.
  const principal: Principal = { accountId: config.CIRRUS_DEFAULT_ACCOUNT_ID, operator: false };

  await ensureDefaultNetwork(core, principal.accountId);
  await syncAddressPool(core);

  const api = new Server();
  api.addService(compute.ComputeService, computeImplementation(core, () => principal));
  const health = new HealthImplementation({ "": "SERVING", "cirrus.compute.v1.Compute": "SERVING" });
  health.addToServer(api);
  new ReflectionService(loadSync(computeProtoFile, { includeDirs: [protoRoot] })).addToServer(api);
  const apiPort = await bind(api, config.CIRRUS_API_LISTEN);

  const control = await startHostControl(core, { ca, own });
  log.info({ listen: config.CIRRUS_API_LISTEN, port: apiPort, controlListen: config.CIRRUS_CONTROL_LISTEN, controlPort: control.port }, "api serving");

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    health.setStatus("", "NOT_SERVING");
    await Promise.all([new Promise((r) => api.tryShutdown(r)), control.stop()]);
    await core.idle();
    agents.close();
    await queue.close();
    redis.disconnect();
    await db.end();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "api failed to start");
  process.exit(1);
});
