// The API service: the compute API (gRPC, with health and reflection) and,
// on a thread of its own (hostControl/start.ts), the agent-facing HostControl
// API: thin adapters over the core, backed by Postgres, handing lifecycle
// work to the workers through BullMQ.
import { Server } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { Redis } from "ioredis";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { AgentClients, clusterChannelCredentials, CONTROL_PLANE_CN, createLogger, issueCredential } from "@cirrus/common";
import { LifecycleQueue, logRedisOutages } from "@cirrus/common/queue";
import { clusterCa, createCore, describeAccounts, ensureDefaultNetwork, loadInstanceTypes, loadSecretsKey, migrate, openPool, syncAddressPool } from "@cirrus/core";
import { computeProtoFile, protoRoot } from "@cirrus/proto";
import { controlNames, loadApiConfig } from "./config.js";
import { accessKeyAuthenticator } from "./auth.js";
import { computeImplementation, signedComputeService } from "./grpc/computeServer.js";
import { bind } from "./grpc/bind.js";
import { startHostControl } from "./hostControl/start.js";
import { startQueryServer } from "./query/server.js";

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
  // Accounts made while the API was down get their default VPC now (cirrus-admin makes it too).
  for (const account of await describeAccounts(db)) await ensureDefaultNetwork(core, account.AccountId);
  await mkdir(dirname(config.CIRRUS_SECRETS_KEY_FILE), { recursive: true });
  const auth = accessKeyAuthenticator(core, await loadSecretsKey(config.CIRRUS_SECRETS_KEY_FILE, { create: true }));
  await syncAddressPool(core);

  const api = new Server();
  api.addService(signedComputeService, computeImplementation(core, auth.grpc));
  const health = new HealthImplementation({ "": "SERVING", "cirrus.compute.v1.Compute": "SERVING" });
  health.addToServer(api);
  new ReflectionService(loadSync(computeProtoFile, { includeDirs: [protoRoot] })).addToServer(api);
  const apiPort = await bind(api, config.CIRRUS_API_LISTEN);

  const control = await startHostControl(core, { ca, own });
  const query = await startQueryServer(core, {
    listen: config.CIRRUS_QUERY_LISTEN,
    auth,
    maxBodyBytes: config.CIRRUS_QUERY_MAX_BODY_BYTES,
    ...(config.CIRRUS_QUERY_TLS_CERT_FILE && config.CIRRUS_QUERY_TLS_KEY_FILE
      ? { tls: { cert: await readFile(config.CIRRUS_QUERY_TLS_CERT_FILE), key: await readFile(config.CIRRUS_QUERY_TLS_KEY_FILE) } }
      : {}),
  });
  log.info({ listen: config.CIRRUS_API_LISTEN, port: apiPort, controlListen: config.CIRRUS_CONTROL_LISTEN, controlPort: control.port, queryListen: config.CIRRUS_QUERY_LISTEN, queryPort: query.port }, "api serving");

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    health.setStatus("", "NOT_SERVING");
    await Promise.all([new Promise((r) => api.tryShutdown(r)), control.stop(), query.stop()]);
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
