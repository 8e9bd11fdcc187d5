// Runs commands on this machine with execFile: argv goes straight to execve,
// so no argument is ever interpreted by a shell.
import { execFile } from "node:child_process";
import { CommandError, DEFAULT_TIMEOUT_MS, settle, type CommandRunner, type RunOptions, type RunResult } from "./types.js";

// Console logs are read 64 KiB at a time; XML and listings are small. The cap
// only guards against a runaway command filling memory.
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

type ExecError = Error & { code?: unknown; killed?: boolean; signal?: string | null };

export class LocalRunner implements CommandRunner {
  readonly target = "local";

  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = argv;
    if (!file) return Promise.reject(new Error("LocalRunner: empty argv"));
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        { encoding: "buffer", maxBuffer: MAX_OUTPUT_BYTES, timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, killSignal: "SIGKILL" },
        (err: ExecError | null, stdout, stderrBuf) => {
          const stderr = stderrBuf.toString("utf8");
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
