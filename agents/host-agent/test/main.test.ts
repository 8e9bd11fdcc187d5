// The real entry point as a process: exit codes and log lines an operator sees.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eventually, freePort, testPki } from "./helpers.js";

const PKG = new URL("../", import.meta.url).pathname;

function startMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ["dist/main.js"], { cwd: PKG, env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => out };
}

describe("main", () => {
  it("exits 1 with one clear log line on bad configuration", async () => {
    const m = startMain({ CIRRUS_DRIVER: "xen", CIRRUS_HEARTBEAT_MS: "-5" });
    expect(await m.exited).toBe(1);
    const lines = m.output().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toBe("host agent not started: bad configuration");
    expect(String(lines[0]!.err)).toMatch(/CIRRUS_DRIVER.*\n.*CIRRUS_HEARTBEAT_MS/);
  }, 30_000);

  it("keeps retrying while the control plane is down and exits 0 on SIGTERM", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "cirrus-main-"));
    try {
      const m = startMain({
        CIRRUS_DRIVER: "fake",
        CIRRUS_ENROLMENT_TOKEN: "token-not-logged",
        CIRRUS_STATE_DIR: stateDir,
        CIRRUS_CONTROL_CA: (await testPki()).caFile,
        CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${await freePort()}`,
        CIRRUS_AGENT_LISTEN: `127.0.0.1:${await freePort()}`,
      });
      await eventually(() => m.output().includes("registration failed; retrying"), 20_000, "a registration retry");
      m.child.kill("SIGTERM");
      expect(await m.exited).toBe(0);
      expect(m.output()).toContain('"msg":"shutting down"');
      expect(m.output()).not.toContain("token-not-logged");
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 30_000);
});
