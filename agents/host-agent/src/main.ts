// Entry point: `npm start` in this package. Exits 0 after SIGTERM/SIGINT, 1 on
// bad configuration or a startup failure, with one clear log line.
import { createLogger } from "@cirrus/common";
import { runAgent } from "./agent.js";
import { loadConfig } from "./config.js";

const log = createLogger("host-agent");

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    log.fatal({ err: String(err) }, "host agent not started: bad configuration");
    return 1;
  }
  const stop = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, () => {
      log.info({ signal: sig }, "shutting down");
      stop.abort(new Error(`received ${sig}`));
    });
  }
  try {
    await runAgent(config, log, stop.signal);
    return 0;
  } catch (err) {
    if (stop.signal.aborted) return 0;
    log.fatal({ err: err instanceof Error ? err.message : String(err) }, "host agent stopped");
    return 1;
  }
}

// Exit explicitly: an SSH keepalive or a half-closed gRPC channel must not keep
// a stopped agent alive. pino writes synchronously, so no log line is lost.
process.exit(await main());
