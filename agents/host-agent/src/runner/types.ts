// How the agent runs host commands: one interface, so the libvirt driver is
// the same code whether it drives the local machine or a bare-metal host over
// SSH. Commands are argv arrays end to end; no caller ever builds a shell line.

export interface RunOptions {
  /** Bytes written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the command (locally) or abandon its channel (over SSH) after this long. */
  timeoutMs?: number;
  /** Exit codes that count as success. Default [0]. */
  okCodes?: number[];
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
  code: number;
}

/**
 * File and signal operations on the runner's host that need no command:
 * offered by runners that can do them in-process (LocalRunner, with
 * node:fs), which saves a process per operation on the launch path.
 * Helpers in host-files.ts fall back to the equivalent commands (cat, tee,
 * rm, test, kill) when a runner has none, with the same results.
 */
export interface HostFiles {
  /** The file's content, or undefined when it does not exist; throws on any other failure. */
  read(path: string): Promise<Buffer | undefined>;
  /** Postcondition: `path` holds exactly `content` with `mode`, replaced atomically (temporary file, then rename). */
  writeAtomic(path: string, content: string | Buffer, mode: number): Promise<void>;
  /** Postcondition: `to` is what `from` was (replacing any `to` atomically, as mv -f within one filesystem); `from` is gone. */
  rename(from: string, to: string): Promise<void>;
  /** Postcondition: none of `paths` exists (missing ones are not an error, as rm -f). */
  remove(paths: readonly string[]): Promise<void>;
  /**
   * Postcondition: `path` is a new file of `sizeBytes` bytes, all hole
   * (reading as zeros, taking no space), with permission bits `mode`;
   * whatever was at `path` is gone (unlinked, not overwritten).
   */
  makeSparse(path: string, sizeBytes: number, mode: number): Promise<void>;
  /** What `path` is (symlinks followed), or undefined when it does not exist. */
  stat(path: string): Promise<HostFileStat | undefined>;
  /** Postcondition: `path` (file or directory, symlinks followed) has permission bits `mode`. */
  chmod(path: string, mode: number): Promise<void>;
  /** `path` with every symlink followed (as realpath -m: the part that does not exist is kept as written). */
  realpath(path: string): Promise<string>;
  /** Sends `signal` to process `pid`; false when there is no such process. */
  signal(pid: number, signal: "SIGHUP" | "SIGTERM"): Promise<boolean>;
}

export interface HostFileStat {
  isFile: boolean;
  /** Device, inode, size and modification time: changes whenever the file is replaced or written. */
  identity: string;
  /** In bytes. */
  size: number;
}

export interface CommandRunner {
  /** Where commands run, for logs: "local" or "ssh://user@host:port". */
  readonly target: string;
  /** In-process file operations on the runner's host; undefined: use commands. */
  readonly files?: HostFiles;
  /**
   * Runs argv[0] with the arguments argv[1..] (no shell interpretation of any
   * argument) and resolves when it exits with one of `okCodes`.
   * Rejects with CommandError when it exits with another code or times out;
   * rejects with another Error when the command could not be started at all
   * (binary missing, SSH connection down).
   */
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** Releases connections. Runs after close() reject. */
  close(): Promise<void>;
}

/** A command that ran and failed: its exit code (-1 on a timeout) and stderr. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number,
    readonly stderr: string,
    readonly timedOut = false,
  ) {
    const what = timedOut ? "timed out" : `exited with code ${code}`;
    const detail = stderr.trim().slice(0, 2000);
    super(`${argv.slice(0, 4).join(" ")}${argv.length > 4 ? " …" : ""} ${what}${detail ? `: ${detail}` : ""}`);
    this.name = "CommandError";
  }
}

export const DEFAULT_TIMEOUT_MS = 120_000;

/** Resolves or rejects a finished command according to `okCodes`. */
export function settle(argv: readonly string[], result: RunResult, okCodes: number[] = [0]): RunResult {
  if (!okCodes.includes(result.code)) throw new CommandError(argv, result.code, result.stderr);
  return result;
}
