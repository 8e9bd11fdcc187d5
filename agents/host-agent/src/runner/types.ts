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

export interface CommandRunner {
  /** Where commands run, for logs: "local" or "ssh://user@host:port". */
  readonly target: string;
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
