// The HostControl thread's entry point: the agents' API with its own
// connection pool. Pushes stay with the main thread's notifier, so that a
// host is never compiled by two notifiers at once: this thread hands them
// over ({ notify }). The main thread starts it (hostControl/start.ts) and
// stops it with "stop"; the thread answers { listening: port } once bound,
// { stopped: true } when done.
import { Server } from "@grpc/grpc-js";
import { parentPort } from "node:worker_threads";
import { agentChannelOptions, createLogger } from "@cirrus/common";
import { openPool, type HostControlCore } from "@cirrus/core";
import { agent } from "@cirrus/proto";
import { loadApiConfig } from "../config.js";
import { bind } from "../grpc/bind.js";
import { hostControlHandlers } from "../grpc/hostControlServer.js";

const port = parentPort!;
const config = loadApiConfig();
const log = createLogger("host-control");
const db = openPool(config, { max: 8, applicationName: "cirrus-host-control", log });
const core: HostControlCore = { db, config, log, notifyHosts: (hostIds) => port.postMessage({ notify: [...hostIds] }) };
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
port.postMessage({ listening: await bind(server, config.CIRRUS_CONTROL_LISTEN) });
