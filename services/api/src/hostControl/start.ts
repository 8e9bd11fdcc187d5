// HostControl, the agents' API, runs on a thread of its own. A heartbeat is
// light work, and on its own event loop the operating system runs it as soon
// as it arrives, however busy the compute API's event loop is: in one event
// loop, a storm of launches (plans, reservations, state compiles) delayed
// heartbeats by seconds. The thread has its own database connections too.
import { Worker } from "node:worker_threads";
import type { Credential } from "@cirrus/common";
import type { Core } from "@cirrus/core";

export interface HostControlThread {
  /** The port HostControl is bound to. */
  port: number;
  /** Stops serving. */
  stop(): Promise<void>;
}

/**
 * Starts the HostControl thread (its configuration comes from the same
 * environment) and resolves once it listens; the hosts it asks to be pushed
 * go to `core`'s notifier. If the thread fails later, the process exits, so
 * that its supervisor restarts the whole API.
 */
export function startHostControl(core: Pick<Core, "log" | "notifyHosts">, tls: { ca: Credential; own: Credential }): Promise<HostControlThread> {
  const { log } = core;
  const worker = new Worker(new URL("./thread.js", import.meta.url), { workerData: tls });
  let stopping = false;
  worker.on("message", (m: { notify?: string[] }) => m.notify && core.notifyHosts(m.notify));
  return new Promise((resolve, reject) => {
    worker.once("error", reject);
    worker.on("message", (m: { listening?: number }) => {
      if (m.listening === undefined) return;
      worker.off("error", reject);
      worker.on("error", (err) => {
        log.fatal({ err }, "the HostControl thread failed");
        process.exit(1);
      });
      worker.on("exit", (code) => {
        if (stopping) return;
        log.fatal({ code }, "the HostControl thread stopped");
        process.exit(1);
      });
      resolve({
        port: m.listening,
        async stop() {
          stopping = true;
          const stopped = new Promise((r) => worker.on("message", (s: { stopped?: boolean }) => s.stopped && r(undefined)));
          worker.postMessage("stop");
          await stopped;
          await worker.terminate();
        },
      });
    });
  });
}
