// The host-file helpers give the same results whether the runner does them
// in-process (LocalRunner's node:fs) or through commands (as over SSH): each
// case runs against both.
import { spawn } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostFileIdentities, hostFileSizes, hostPathExists, makeSparseHostFile, moveHostFile, readHostFile, removeHostFiles, setHostFileMode, signalHostProcess, withHostTempFile, writeHostFile } from "../src/runner/host-files.js";
import { LocalRunner } from "../src/runner/local.js";
import { traced, traceScope, currentTrace } from "../src/runner/trace.js";
import type { CommandRunner, RunOptions } from "../src/runner/types.js";

const local = new LocalRunner();
/** The same machine without in-process files: every helper must fall back to commands. */
const commandsOnly: CommandRunner = { target: "commands-only", run: (argv: string[], opts?: RunOptions) => local.run(argv, opts), close: async () => {} };

describe.each([
  ["in-process (LocalRunner)", local, 0],
  ["through commands", commandsOnly, 1],
] as const)("host files %s", (_name, runner, minCommands) => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cirrus-host-files-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs fn and returns how many commands it ran. */
  async function commandsOf(fn: () => Promise<unknown>): Promise<number> {
    const { trace, result } = await traced(fn);
    if (result.status === "rejected") throw result.reason;
    return trace.commands.length;
  }

  it("reads a file, or undefined when it (or a directory on its path) is missing", async () => {
    writeFileSync(join(dir, "a"), "hello\n");
    writeFileSync(join(dir, "plain"), "x");
    expect(await readHostFile(runner, join(dir, "a"))).toBe("hello\n");
    expect(await readHostFile(runner, join(dir, "missing"))).toBeUndefined();
    expect(await readHostFile(runner, join(dir, "plain", "below"))).toBeUndefined();
    // procfs files report size 0 and are read to their end all the same.
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      expect(await readHostFile(runner, `/proc/${child.pid}/cmdline`)).toBe("sleep\u000030\u0000");
    } finally {
      child.kill();
    }
    expect(await commandsOf(() => readHostFile(runner, join(dir, "a")))).toBeGreaterThanOrEqual(minCommands);
  });

  it("fails to read what exists but cannot be read", async () => {
    mkdirSync(join(dir, "adir"), { recursive: true });
    await expect(readHostFile(runner, join(dir, "adir"))).rejects.toThrow();
  });

  it("writes atomically with mode 0644, replacing what was there, and leaves no temporary file", async () => {
    const p = join(dir, "w");
    writeFileSync(p, "old content that is longer");
    chmodSync(p, 0o600);
    await writeHostFile(runner, p, "new");
    expect(readFileSync(p, "utf8")).toBe("new");
    expect(statSync(p).mode & 0o777).toBe(0o644);
    expect(existsSync(`${p}.tmp`)).toBe(false);
  });

  it("removes files as rm -f does: missing ones are fine, a directory is not", async () => {
    writeFileSync(join(dir, "r1"), "");
    writeFileSync(join(dir, "r2"), "");
    await removeHostFiles(runner, [join(dir, "r1"), join(dir, "never"), join(dir, "r2")]);
    expect(existsSync(join(dir, "r1")) || existsSync(join(dir, "r2"))).toBe(false);
    await removeHostFiles(runner, []);
    mkdirSync(join(dir, "rdir"), { recursive: true });
    await expect(removeHostFiles(runner, [join(dir, "rdir")])).rejects.toThrow();
  });

  it("sets the mode of a file and of a directory", async () => {
    const f = join(dir, "m");
    writeFileSync(f, "");
    mkdirSync(join(dir, "mdir"), { recursive: true });
    await setHostFileMode(runner, f, 0o600);
    await setHostFileMode(runner, join(dir, "mdir"), 0o711);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "mdir")).mode & 0o777).toBe(0o711);
    await expect(setHostFileMode(runner, join(dir, "never"), 0o600)).rejects.toThrow();
  });

  it("moves a file over another atomically", async () => {
    writeFileSync(join(dir, "from"), "moved");
    writeFileSync(join(dir, "to"), "replaced");
    await moveHostFile(runner, join(dir, "from"), join(dir, "to"));
    expect(readFileSync(join(dir, "to"), "utf8")).toBe("moved");
    expect(existsSync(join(dir, "from"))).toBe(false);
  });

  it("tells whether a path exists", async () => {
    expect(await hostPathExists(runner, dir)).toBe(true);
    expect(await hostPathExists(runner, join(dir, "nothing"))).toBe(false);
  });

  it("gives regular files an identity that changes when the file does, and none to what is not a regular file", async () => {
    const f = join(dir, "img");
    writeFileSync(f, "1");
    const link = join(dir, "img-link");
    if (!existsSync(link)) await local.run(["ln", "-s", f, link]);
    const [a, missing, directory, viaLink, empty] = await hostFileIdentities(runner, [f, join(dir, "none"), dir, link, (writeFileSync(join(dir, "empty"), ""), join(dir, "empty"))]);
    expect(a).toEqual(expect.any(String));
    expect(missing).toBeUndefined();
    expect(directory).toBeUndefined();
    expect(viaLink).toBe(a);
    expect(empty).toEqual(expect.any(String));
    expect((await hostFileIdentities(runner, [f]))[0]).toBe(a);
    writeFileSync(f, "22");
    utimesSync(f, new Date(), new Date(Date.now() + 5000));
    expect((await hostFileIdentities(runner, [f]))[0]).not.toBe(a);
    // One command at most for any number of files.
    expect(await commandsOf(() => hostFileIdentities(runner, [f, dir, link]))).toBe(minCommands);
  });

  it("makes a new sparse file reading as zeros with the mode asked for, unlinking what was there, and reads sizes back", async () => {
    const f = join(dir, "scratch.raw");
    writeFileSync(f, "data that must not survive");
    chmodSync(f, 0o644);
    const old = statSync(f).ino;
    const held = openSync(f, "r");
    try {
      await makeSparseHostFile(runner, f, 3 * 1024 * 1024, 0o600);
      const s = statSync(f);
      expect(s.size).toBe(3 * 1024 * 1024);
      expect(s.mode & 0o777).toBe(0o600);
      expect(s.blocks).toBe(0);
      expect(s.ino).not.toBe(old);
      expect(readFileSync(f).every((b) => b === 0)).toBe(true);
      // A holder of the old file keeps its data: it was unlinked, not overwritten.
      const buf = Buffer.alloc(4);
      readSync(held, buf, 0, 4, 0);
      expect(buf.toString()).toBe("data");
    } finally {
      closeSync(held);
    }
    expect(await hostFileSizes(runner, [f, join(dir, "none"), dir, (writeFileSync(join(dir, "empty2"), ""), join(dir, "empty2"))])).toEqual([3 * 1024 * 1024, undefined, undefined, 0]);
    expect(await commandsOf(() => hostFileSizes(runner, [f, dir]))).toBe(minCommands);
    expect(await commandsOf(() => hostFileSizes(runner, []))).toBe(0);
  });

  it("signals a process, and says false for one that is gone", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const exited = new Promise((r) => child.once("exit", (_code, signal) => r(signal)));
    expect(await signalHostProcess(runner, child.pid!, "SIGTERM")).toBe(true);
    expect(await exited).toBe("SIGTERM");
    expect(await signalHostProcess(runner, child.pid!, "SIGHUP")).toBe(false);
  });

  it("hands out a temporary file with the content (mode 0600) and removes it afterwards, also after a failure", async () => {
    const before = readdirSync("/tmp").filter((n) => n.startsWith("cirrus-hf-test.")).length;
    let seen = "";
    const out = await withHostTempFile(runner, "cirrus-hf-test", "<xml/>", async (p) => {
      seen = p;
      expect(readFileSync(p, "utf8")).toBe("<xml/>");
      expect(statSync(p).mode & 0o777).toBe(0o600);
      return 7;
    });
    expect(out).toBe(7);
    expect(existsSync(seen)).toBe(false);
    await expect(withHostTempFile(runner, "cirrus-hf-test", "x", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(readdirSync("/tmp").filter((n) => n.startsWith("cirrus-hf-test.")).length).toBe(before);
  });
});

describe("LocalRunner files", () => {
  it("refuses to signal pid 0 or a negative pid (process groups)", async () => {
    await expect(local.files.signal(0, "SIGTERM")).rejects.toThrow(/not a process id/);
    await expect(local.files.signal(-1, "SIGTERM")).rejects.toThrow(/not a process id/);
  });
});

describe("command traces", () => {
  it("collect the commands run on a call's behalf with their phase, or the scope they ran in", async () => {
    const { trace, result } = await traced(async () => {
      currentTrace()?.phase("one");
      await local.run(["true"]);
      await Promise.all([traceScope("side", () => local.run(["sh", "-c", "exit 3"], { okCodes: [3] })), local.run(["echo", "x"])]);
      currentTrace()?.phase("two");
      await local.run(["false"]).catch(() => undefined);
      return 42;
    });
    expect(result).toEqual({ status: "fulfilled", value: 42 });
    const seen = trace.commands.map((c) => [c.argv[0], c.phase, c.code]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    expect(seen).toEqual([
      ["echo", "one", 0],
      ["false", "two", 1],
      ["sh", "side", 3],
      ["true", "one", 0],
    ]);
    expect(trace.phases().map((p) => p.name)).toEqual(["one", "two"]);
    expect(Object.keys(trace.spans)).toEqual(["side"]);
    expect(trace.spans.side).toBeGreaterThanOrEqual(trace.commands.find((c) => c.argv[0] === "sh")!.ms - 0.1);
    expect(trace.commands.every((c) => c.ms >= 0 && c.atMs >= 0)).toBe(true);
  });

  it("record nothing outside a trace", async () => {
    expect(currentTrace()).toBeUndefined();
    await local.run(["true"]);
    const { trace } = await traced(async () => undefined);
    expect(trace.commands).toEqual([]);
  });
});
