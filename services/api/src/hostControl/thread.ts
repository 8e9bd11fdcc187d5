// The HostControl thread's entry point: the agents' API with its own
// connection pool. Pushes stay with the main thread's notifier, so that a
// host is never compiled by two notifiers at once: this thread hands them
// over ({ notify }). The cluster CA and the process's own TLS credential
// arrive as workerData. The main thread starts it (hostControl/start.ts) and
// stops it with "stop"; the thread answers { listening: port } once bound,
// { stopped: true } when done.
import { Server } from "@grpc/grpc-js";
import { parentPort, workerData } from "node:worker_threads";
import { agentChannelOptions, clusterServerCredentials, createLogger, type Credential } from "@cirrus/common";
import { openPool, type HostControlCore } from "@cirrus/core";
import { agent } from "@cirrus/proto";
import { loadApiConfig } from "../config.js";
import { bind } from "../grpc/bind.js";
import { hostControlHandlers } from "../grpc/hostControlServer.js";

const port = parentPort!;
const config = loadApiConfig();
const log = createLogger("host-control");
const db = openPool(config, { max: 8, applicationName: "cirrus-host-control", log });
const { ca, own } = workerData as { ca: Credential; own: Credential };
const core: HostControlCore & { ca: Credential } = { db, config, log, ca, notifyHosts: (hostIds) => port.postMessage({ notify: [...hostIds] }) };
const server = new Server(agentChannelOptions);
server.addService(agent.HostControlService, hostControlHandlers(core, config.CIRRUS_ENROLMENT_TOKEN));

port.on("message", (message: unknown) => {
  if (message !== "stop") return;
  void (async () => {
    await new Promise((r) => server.tryShutdown(r));
    await db.end();
    port.postMessage({ stopped: true });
  })();
});
// Client certificates are optional at the handshake (an enrolling agent has none yet); every call but RegisterHost checks one.
port.postMessage({ listening: await bind(server, config.CIRRUS_CONTROL_LISTEN, clusterServerCredentials(ca.certPem, own, false)) });
