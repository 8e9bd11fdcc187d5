// The CLI's failures and their exit codes. The codes are the aws CLI's
// (https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-returncodes.html),
// so scripts written against `aws ec2` keep working against `cirrus`.

export const ExitCode = {
  ok: 0,
  /** Bad command line: unknown option, unparsable value, missing argument. */
  usage: 252,
  /** The environment or configuration is invalid or incomplete (no credentials, unknown profile). */
  config: 253,
  /** The service answered with an error. */
  service: 254,
  /** Anything else: cannot connect, timed out, waiter failed. */
  general: 255,
} as const;

/** A failure the CLI reports with a message on stderr and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Invalid command-line input (exit 252). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** `Error parsing parameter '--x': …`, the aws CLI's wording for a value it cannot read. */
export function parameterError(flag: string, detail: string): UsageError {
  return new UsageError(`Error parsing parameter '${flag}': ${detail}`);
}

/** An EC2 error returned by the service (exit 254). */
export class ServiceError extends CliError {
  constructor(
    readonly code: string,
    readonly operation: string,
    readonly detail: string,
  ) {
    super(formatServiceError(code, operation, detail), ExitCode.service);
  }
}

/** The aws CLI's one-line rendering of a service error. */
export function formatServiceError(code: string, operation: string, message: string): string {
  return `An error occurred (${code}) when calling the ${operation} operation: ${message}`;
}

/** The endpoint could not be reached or did not answer in time (exit 255). */
export class EndpointError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.general);
  }
}

/** A `--wait` ended in an unexpected state or timed out (exit 255). */
export class WaiterError extends CliError {
  constructor(waiter: string, reason: string) {
    super(`Waiter ${waiter} failed: ${reason}`, ExitCode.general);
  }
}
