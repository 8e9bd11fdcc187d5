// The fake fleet for bench/scale, run as a child process: N real host agents
// (runAgent with the fake driver) in one process, each with its own HostAgent
// server, registering and heartbeating through the real HostControl API.
//
// Environment: CIRRUS_CONTROL_ENDPOINT, CIRRUS_ENROLMENT_TOKEN, FLEET_SIZE,
// FLEET_BATCH, FLEET_STATE_DIR, CIRRUS_HEARTBEAT_MS, CIRRUS_CAPACITY_*.
import { setMaxListeners } from "node:events";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createLogger } from "@cirrus/common";
import { loadConfig, runAgent } from "@cirrus/host-agent";

const env = process.env;
const size = Number(env.FLEET_SIZE ?? 1000);
/**
 * Agents started together. Real hosts enrol from their own CPUs; here one
 * process does all their TLS and RSA work, so starting all at once answers
 * registrations later than the agents' call deadline and they retry forever.
 * Each batch is enrolled (its host.json written) before the next starts.
 */
const batch = Number(env.FLEET_BATCH ?? 50);
const stateDir = env.FLEET_STATE_DIR!;
const log = createLogger("fleet").child({}, { level: "warn" });
const stop = new AbortController();

/**
 * Listening ports for the agents, below the kernel's ephemeral range, so
 * the thousands of connections the fleet opens can never take one before its
 * agent binds it. Each is checked free once.
 */
let nextPort = 20_000 + Math.floor(Math.random() * 2_000);
async function listenPort(): Promise<number> {
  for (;;) {
    const port = nextPort++;
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}
// Every agent listens on the one signal.
setMaxListeners(0, stop.signal);

async function startAgents(): Promise<void> {
  let enrolling: string[] = [];
  for (let i = 0; i < size; i++) {
    const name = `fleet-${String(i).padStart(4, "0")}`;
    const dir = join(stateDir, name);
    mkdirSync(dir, { recursive: true });
    enrolling.push(join(dir, "host.json"));
    const config = loadConfig({
      ...env,
      CIRRUS_DRIVER: "fake",
      CIRRUS_HOST_NAME: name,
      CIRRUS_AGENT_LISTEN: `127.0.0.1:${await listenPort()}`,
      CIRRUS_STATE_DIR: dir,
      CIRRUS_INSTANCES_DIR: dir,
    });
    runAgent(config, log.child({ hostName: name }), stop.signal).catch((err: unknown) => log.error({ err: String(err), hostName: name }, "agent stopped"));
    if (enrolling.length === batch || i === size - 1) {
      while (!enrolling.every((f) => existsSync(f))) await new Promise((r) => setTimeout(r, 100));
      enrolling = [];
    }
  }
}

process.on("message", (m: { stop?: boolean }) => {
  if (m.stop) {
    stop.abort();
    setTimeout(() => process.exit(0), 2000);
  }
});

await startAgents();
process.send!({ started: size });
