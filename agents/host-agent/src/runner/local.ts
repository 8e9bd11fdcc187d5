// Runs commands on this machine with execFile: argv goes straight to execve,
// so no argument is ever interpreted by a shell.
import { execFile } from "node:child_process";
import { chmod, open, readFile, realpath, rename, stat, unlink, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import { commandStarted } from "./trace.js";
import { CommandError, DEFAULT_TIMEOUT_MS, settle, type CommandRunner, type HostFiles, type HostFileStat, type RunOptions, type RunResult } from "./types.js";

// Console logs are read 64 KiB at a time; XML and listings are small. The cap
// only guards against a runaway command filling memory.
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

type ExecError = Error & { code?: unknown; killed?: boolean; signal?: string | null };

const errno = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;
/** A path that does not exist: missing, or a component of it is not a directory. */
const missing = (err: unknown) => errno(err) === "ENOENT" || errno(err) === "ENOTDIR";

/** HostFiles with node:fs on this machine: what cat, tee + chmod + mv, rm -f, truncate, stat and kill do, without a process. */
export const localFiles: HostFiles = {
  async read(path) {
    try {
      return await readFile(path);
    } catch (err) {
      if (missing(err)) return undefined;
      throw err;
    }
  },
  async writeAtomic(path, content, mode) {
    const tmp = `${path}.tmp`;
    await writeFile(tmp, content, { mode });
    // The mode given to writeFile is masked by the umask (and ignored for an existing file).
    await chmod(tmp, mode);
    await rename(tmp, path);
  },
  rename(from, to) {
    return rename(from, to);
  },
  chmod(path, mode) {
    return chmod(path, mode);
  },
  async realpath(path) {
    // As realpath -m: resolve the longest part that exists, keep the rest.
    const parts = path.split("/").filter((s) => s !== "");
    for (let n = parts.length; n > 0; n--) {
      try {
        const head = await realpath(`/${parts.slice(0, n).join("/")}`);
        return posix.join(head, ...parts.slice(n));
      } catch (err) {
        if (!missing(err)) throw err;
      }
    }
    return posix.join("/", ...parts);
  },
  async remove(paths) {
    for (const p of paths) {
      try {
        await unlink(p);
      } catch (err) {
        if (errno(err) !== "ENOENT") throw err;
      }
    }
  },
  async makeSparse(path, sizeBytes, mode) {
    await localFiles.remove([path]);
    // "wx": a file made here and now, never one (or a symlink) that appeared meanwhile.
    const file = await open(path, "wx", mode);
    try {
      await file.truncate(sizeBytes);
      // The mode given to open is masked by the umask.
      await file.chmod(mode);
    } finally {
      await file.close();
    }
  },
  async stat(path): Promise<HostFileStat | undefined> {
    try {
      const s = await stat(path, { bigint: true });
      return { isFile: s.isFile(), identity: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`, size: Number(s.size) };
    } catch (err) {
      if (missing(err)) return undefined;
      throw err;
    }
  },
  async signal(pid, signal) {
    // kill(2) with 0 or a negative pid signals process groups: never what is meant here.
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`not a process id: ${pid}`);
    try {
      process.kill(pid, signal);
      return true;
    } catch (err) {
      if (errno(err) === "ESRCH") return false;
      throw err;
    }
  },
};

/**
 * Variables a command may inherit from the agent: what locating programs,
 * locale and temporary files need, and libvirt's own settings. Nothing
 * else: the agent's environment holds its enrolment token and other
 * secrets, which no child (dnsmasq lives for months) may carry.
 */
const INHERITED = /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|XDG_RUNTIME_DIR|LIBVIRT_[A-Z_]+|VIRSH_[A-Z_]+)$/;

/** The environment every command runs with: the agent's, filtered by INHERITED. */
export function childEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name, value]) => value !== undefined && INHERITED.test(name) && !/SECRET|TOKEN|PASSWORD/.test(name)));
}

export class LocalRunner implements CommandRunner {
  readonly target = "local";
  readonly files = localFiles;

  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = argv;
    if (!file) return Promise.reject(new Error("LocalRunner: empty argv"));
    const done = commandStarted(argv);
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        { encoding: "buffer", maxBuffer: MAX_OUTPUT_BYTES, timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, killSignal: "SIGKILL", env: childEnvironment() },
        (err: ExecError | null, stdout, stderrBuf) => {
          const stderr = stderrBuf.toString("utf8");
          done(err ? (typeof err.code === "number" ? err.code : -1) : 0);
          if (err && typeof err.code !== "number") {
            if (err.killed) return reject(new CommandError(argv, -1, stderr, true));
            if (err.signal) return reject(new CommandError(argv, -1, `${stderr}\nkilled by ${err.signal}`));
            // Spawn failures (ENOENT, EACCES...) are not command failures: the command never ran.
            return reject(new Error(`cannot run ${file}: ${err.message}`));
          }
          try {
            resolve(settle(argv, { stdout, stderr, code: err ? (err.code as number) : 0 }, opts.okCodes));
          } catch (failure) {
            reject(failure);
          }
        },
      );
      // A command that exits without reading its stdin makes the pipe fail with
      // EPIPE; its exit code tells the real story, so that error is dropped.
      child.stdin?.on("error", () => {});
      child.stdin?.end(opts.input ?? "");
    });
  }

  async close(): Promise<void> {}
}
