// The `cirrus` program: commander wiring for the command specs, the global
// options, and the mapping of every failure to a message and an exit code.
// `run` takes its argv and I/O as arguments so tests can drive it in-process.
import { Command, CommanderError, Option } from "commander";
import { runAdmin } from "./admin.js";
import { connect } from "./client.js";
import { resolveSigner } from "./credentials.js";
import { runCommand, runWait, WAIT_TIMEOUT, waitParams, type AnyCommandSpec, type RunContext, type WaitCommandSpec } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { WAIT_COMMANDS } from "./commands/waiters.js";
import { CliError, ExitCode, parameterError } from "./errors.js";
import { OUTPUT_FORMATS, type OutputFormat } from "./output.js";
import { commanderFlags, type ParamSpec } from "./params.js";
import { parseQuery } from "./query.js";

export const DEFAULT_ENDPOINT = "127.0.0.1:50051";
/** Seconds a call may take before the CLI gives up (aws: --cli-read-timeout). */
export const DEFAULT_READ_TIMEOUT_S = 30;

/** The process's streams and environment, injectable for tests. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  stderrIsTTY: boolean;
  env: Record<string, string | undefined>;
}

/** Knobs for tests: how often --wait polls, and its clock. */
export interface RunOptions {
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

interface GlobalOptions {
  endpoint?: string;
  profile?: string;
  region?: string;
  output?: string;
  query?: string;
  cliReadTimeout?: string;
}

function addParam(cmd: Command, p: ParamSpec): void {
  const opt = new Option(commanderFlags(p), p.description);
  if (p.defaultValue !== undefined) opt.default(p.defaultValue);
  if (p.required) opt.makeOptionMandatory();
  cmd.addOption(opt);
}

/** The option values keyed by flag ("image-id"), as `runCommand` expects. */
function valuesByFlag(cmd: Command, params: readonly ParamSpec[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const p of params) {
    const opt = cmd.options.find((o) => o.long === `--${p.flag}`);
    if (opt) values[p.flag] = cmd.getOptionValue(opt.attributeName());
  }
  return values;
}

function readTimeoutMs(raw: string | undefined): number {
  const seconds = Number(raw ?? DEFAULT_READ_TIMEOUT_S);
  if (!Number.isFinite(seconds) || seconds < 0) throw parameterError("--cli-read-timeout", `expected seconds, received '${raw}'`);
  return seconds * 1000;
}

/** The output format; CIRRUS_OUTPUT arrives as a default, which commander does not check against the choices. */
function outputFormat(raw: string | undefined): OutputFormat {
  const format = raw ?? "json";
  if (!(OUTPUT_FORMATS as readonly string[]).includes(format))
    throw parameterError("--output", `expected one of ${OUTPUT_FORMATS.join(", ")}, received '${format}'`);
  return format as OutputFormat;
}

function buildProgram(io: Io, options: RunOptions): Command {
  const program = new Command("cirrus")
    .description("Command-line client for the Cirrus compute API, in the style of `aws ec2`.")
    .usage("[options] <command> [parameters]")
    .addOption(new Option("--endpoint <host:port>", "the Cirrus API endpoint (env CIRRUS_ENDPOINT)").default(io.env.CIRRUS_ENDPOINT || DEFAULT_ENDPOINT))
    .addOption(new Option("--profile <name>", "the profile of ~/.aws/credentials and ~/.aws/config to sign with (env AWS_PROFILE)"))
    .addOption(new Option("--region <region>", "the region to sign for (env AWS_REGION, else the profile's)"))
    .addOption(
      new Option("--output <format>", "output format (env CIRRUS_OUTPUT)")
        .choices(OUTPUT_FORMATS)
        .default(io.env.CIRRUS_OUTPUT || "json"),
    )
    .addOption(new Option("--query <expression>", "print only what this JMESPath expression selects, e.g. KeyMaterial or Reservations[].Instances[?State.Name=='running'].InstanceId"))
    .addOption(new Option("--cli-read-timeout <seconds>", "how long one call may take; 0 waits forever").default(String(DEFAULT_READ_TIMEOUT_S)))
    // Settings below are inherited by the commands added afterwards.
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError("(run 'cirrus --help' for usage)")
    .allowExcessArguments(false);

  for (const spec of COMMANDS) addCommand(program, spec, io, options);
  addWaitCommands(program, io, options);
  program
    .command("admin")
    .description("Operator commands on the control plane's database (DATABASE_URL): accounts, access keys, hosts. 'cirrus admin --help' lists them.")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[args...]")
    .action(async (args: string[]) => {
      const code = await runAdmin(args);
      // cirrus-admin has printed its own error; its exit code is passed on.
      if (code !== 0) throw new CliError("", code);
    });
  return program;
}

function addCommand(program: Command, spec: AnyCommandSpec, io: Io, options: RunOptions): void {
  const params = [...spec.params, ...(spec.wait ? waitParams(spec.wait.waiter) : [])];
  const cmd = program
    .command(spec.name)
    .description(spec.summary)
    .showHelpAfterError(`(run 'cirrus ${spec.name} --help' for usage)`)
    .configureHelp({ showGlobalOptions: true });
  for (const p of params) addParam(cmd, p);
  cmd.action(act(io, options, params, (values, ctx) => runCommand(spec, values, ctx)));
}

/** `cirrus wait <waiter>`, as `aws ec2 wait <waiter>`. */
function addWaitCommands(program: Command, io: Io, options: RunOptions): void {
  const wait = program
    .command("wait")
    .description("Wait until resources reach a state, as `aws ec2 wait`: exit 0 when they do, 255 when they cannot or the time is up. 'cirrus wait --help' lists the waiters.");
  for (const spec of WAIT_COMMANDS) addWaitCommand(wait, spec, io, options);
}

function addWaitCommand(wait: Command, spec: WaitCommandSpec, io: Io, options: RunOptions): void {
  const params = [spec.ids, WAIT_TIMEOUT];
  const cmd = wait
    .command(spec.name)
    .description(`Wait until every ${spec.waiter.noun} named is ${spec.waiter.target} (the aws CLI's ${spec.waiter.name} waiter), showing progress on stderr`)
    .showHelpAfterError(`(run 'cirrus wait ${spec.name} --help' for usage)`)
    .configureHelp({ showGlobalOptions: true });
  for (const p of params) addParam(cmd, p);
  cmd.action(act(io, options, params, (values, ctx) => runWait(spec, values, ctx)));
}

/** A command's action: connects as the global options say, runs `body` with the option values, closes. */
function act(io: Io, options: RunOptions, params: readonly ParamSpec[], body: (values: Record<string, unknown>, ctx: RunContext) => Promise<void>) {
  return async (_opts: unknown, self: Command): Promise<void> => {
    const g = self.optsWithGlobals<GlobalOptions>();
    const output = outputFormat(g.output);
    const query = g.query === undefined ? undefined : parseQuery(g.query);
    const signer = await resolveSigner(io.env, { ...(g.profile ? { profile: g.profile } : {}), ...(g.region ? { region: g.region } : {}) });
    const api = connect(g.endpoint ?? DEFAULT_ENDPOINT, readTimeoutMs(g.cliReadTimeout), signer);
    const ctx: RunContext = {
      api,
      region: signer.region,
      output,
      ...(query ? { query } : {}),
      stdout: io.stdout,
      progress: { write: io.stderr, isTTY: io.stderrIsTTY },
      pollMs: options.pollMs ?? 1000,
      ...(options.sleep ? { sleep: options.sleep } : {}),
      ...(options.now ? { now: options.now } : {}),
    };
    try {
      await body(valuesByFlag(self, params), ctx);
    } finally {
      api.close();
    }
  };
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function run(argv: readonly string[], io: Io, options: RunOptions = {}): Promise<number> {
  try {
    await buildProgram(io, options).parseAsync([...argv], { from: "user" });
    return ExitCode.ok;
  } catch (err) {
    return reportError(err, io);
  }
}

/** Prints a failure (commander has already printed its own) and picks the exit code. */
function reportError(err: unknown, io: Io): number {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; every other commander error is bad usage.
    return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (err instanceof CliError) {
    if (err.message) io.stderr(`${err.message}\n`);
    return err.exitCode;
  }
  io.stderr(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return ExitCode.general;
}
