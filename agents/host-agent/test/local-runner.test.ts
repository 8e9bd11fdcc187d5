import { describe, expect, it } from "vitest";
import { LocalRunner } from "../src/runner/local.js";
import { CommandError } from "../src/runner/types.js";

const runner = new LocalRunner();

describe("LocalRunner", () => {
  it("passes argv without a shell and returns stdout as bytes", async () => {
    const r = await runner.run(["printf", "%s|", "a b", "$(id)", "*"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe("a b|$(id)|*|");
  });

  it("gives commands none of the agent's secrets: the enrolment token and the like stay in the agent", async () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, { CIRRUS_ENROLMENT_TOKEN: "enrol-me-0123456789", DATABASE_URL: "postgres://u:pw@db/x", CIRRUS_SSH_KEY: "/etc/cirrus/key", LC_SECRET_THING: "s3cret", LANG: "C.UTF-8" });
      const env = (await runner.run(["env"])).stdout.toString();
      for (const leaked of ["enrol-me-0123456789", "pw@db", "CIRRUS_", "s3cret"]) expect(env).not.toContain(leaked);
      expect(env).toMatch(/^PATH=/m);
      expect(env).toContain("LANG=C.UTF-8");
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it("feeds input on stdin", async () => {
    const r = await runner.run(["cat"], { input: Buffer.from([0, 1, 2, 255]) });
    expect([...r.stdout]).toEqual([0, 1, 2, 255]);
  });

  it("rejects a non-ok exit with a CommandError carrying argv[0], code and stderr", async () => {
    const err = await runner.run(["sh", "-c", "echo boom >&2; exit 3"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    const ce = err as CommandError;
    expect(ce.code).toBe(3);
    expect(ce.stderr).toBe("boom\n");
    expect(ce.message).toMatch(/^sh .*exited with code 3: boom$/);
  });

  it("accepts exit codes listed in okCodes", async () => {
    const r = await runner.run(["sh", "-c", "exit 1"], { okCodes: [0, 1] });
    expect(r.code).toBe(1);
    await expect(runner.run(["true"], { okCodes: [1] })).rejects.toBeInstanceOf(CommandError);
  });

  it("kills a command at its timeout", async () => {
    const t0 = Date.now();
    const err = (await runner.run(["sleep", "10"], { timeoutMs: 200 }).catch((e: unknown) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.timedOut).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("reports a missing binary as a start failure, not a command failure", async () => {
    const err = await runner.run(["/nonexistent/cirrus-binary"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(CommandError);
    expect(String(err)).toMatch(/cannot run \/nonexistent\/cirrus-binary/);
  });

  it("does not fail when the command ignores its input", async () => {
    const r = await runner.run(["true"], { input: Buffer.alloc(1 << 20) });
    expect(r.code).toBe(0);
  });
});
