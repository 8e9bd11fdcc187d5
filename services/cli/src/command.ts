// One generic way to run any command: a command is a declarative spec (its
// RPC, options, resource list, table view, optional waiter; derived from the
// operation table in commands/), and `runCommand` does the rest — build the
// request, call (following NextToken), wait, print. `runWait` runs a waiter
// on its own (`cirrus wait <name>`).
import type { ComputeApi, Rpc } from "./client.js";
import { CliError, ExitCode, parameterError } from "./errors.js";
import { formatJson, formatTable, formatText, messageJson, scalarGrid, valueGrid, type Grid, type JsonObject, type OutputFormat } from "./output.js";
import { fieldName, paramFields, toMessage, type JsonMessageFns, type ParamSpec } from "./params.js";
import { evaluate, type Query } from "./query.js";
import { waitUntil, type Observation, type ProgressSink, type WaitResult, type Waiter } from "./wait.js";

/** Current observations of resources (an id absent from the map was not found). */
export type ObserveFn<Seen extends Observation> = (api: ComputeApi, ids: readonly string[]) => Promise<Map<string, Seen>>;

/** How `--wait` works for a command whose resources change state. */
export interface WaitSpec<Req, Res, Seen extends Observation> {
  waiter: Waiter;
  /** The resources to wait for. */
  ids(request: Req, response: Res): string[];
  observe: ObserveFn<Seen>;
  /** The response to print after waiting: the command's own shape, with the states last seen. */
  finalize(response: Res, seen: ReadonlyMap<string, Seen>): Res;
}

export interface CommandSpec<Req, Res, Seen extends Observation = Observation> {
  /** The aws CLI's command name, e.g. "run-instances". */
  name: string;
  summary: string;
  rpc: Rpc<Req, Res>;
  request: JsonMessageFns<Req>;
  response: { toJSON(message: Res): unknown };
  params: ParamSpec[];
  /**
   * Rewrites the fields the options set into the request's shape, for options
   * that are not request members (the aws CLI's customizations, e.g.
   * `--protocol tcp --port 22` → IpPermissions), or fill in members the aws
   * CLI fills in (copy-snapshot's DestinationRegion: the region signed for).
   * Throws UsageError on bad input.
   */
  prepare?: (fields: Record<string, unknown>, env: { region: string }) => Record<string, unknown>;
  /**
   * The response member holding the resource list. It is always printed (as
   * [] when empty, as the aws CLI does) and concatenated across pages.
   */
  listKey?: string;
  /** Fetch every page (following NextToken) unless --max-results or --next-token is given. */
  paginate?: boolean;
  /** The rows for --output table; without it, a Key/Value table of the top-level scalars. */
  table?: (response: Res) => Grid;
  /** Rewrites the JSON before json/text output (e.g. decoding base64 console output). */
  present?: (json: JsonObject) => JsonObject;
  /** Replaces --output text and table with raw text (e.g. the console log itself). */
  raw?: (response: Res) => string;
  wait?: WaitSpec<Req, Res, Seen>;
}

/** A command spec with its types erased, for the list of commands of different message types. */
export type AnyCommandSpec = CommandSpec<any, any, any>;

/** `cirrus wait <name>`: a waiter on its own, on the ids given (the aws CLI's `aws ec2 wait <name>`). */
export interface WaitCommandSpec {
  name: string;
  waiter: Waiter;
  /** The required option naming the resources, e.g. `--volume-ids`. */
  ids: ParamSpec;
  observe: ObserveFn<Observation>;
}

const WAIT_FLAG = "wait";
export const WAIT_TIMEOUT: ParamSpec = {
  flag: "wait-timeout",
  kind: "integer",
  valueName: "seconds",
  description: "give up waiting after this many seconds",
  defaultValue: "600",
};

/** The options a command with a waiter gets (they configure the CLI, not the request). */
export function waitParams(waiter: Waiter): ParamSpec[] {
  const description = `wait until every ${waiter.noun} is ${waiter.target} (the aws CLI's ${waiter.name} waiter), showing progress on stderr`;
  return [{ flag: WAIT_FLAG, kind: "flag", description }, WAIT_TIMEOUT];
}

/** `--wait-timeout` in milliseconds. */
function waitTimeoutMs(values: Record<string, unknown>): number {
  const raw = (values[WAIT_TIMEOUT.flag] as string | undefined) ?? WAIT_TIMEOUT.defaultValue!;
  const seconds = paramFields(WAIT_TIMEOUT, raw)[fieldName(WAIT_TIMEOUT.flag)] as number;
  if (seconds <= 0) throw parameterError(`--${WAIT_TIMEOUT.flag}`, `expected a positive number of seconds, received '${raw}'`);
  return seconds * 1000;
}

/** What a command needs from the outside world. */
export interface RunContext {
  api: ComputeApi;
  /** The region calls are signed for (the one region a Cirrus cloud has). */
  region: string;
  output: OutputFormat;
  /** `--query`: print only what it selects. */
  query?: Query;
  stdout(text: string): void;
  /** stderr, where wait progress goes. */
  progress: ProgressSink;
  pollMs: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** The request fields the user's options set (absent options set nothing). */
export function requestFields(params: readonly ParamSpec[], values: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const p of params) {
    const raw = values[p.flag];
    if (raw === undefined || raw === false) continue;
    Object.assign(fields, paramFields(p, raw as string | string[] | boolean));
  }
  return fields;
}

/**
 * Runs a command: `values` maps each option's flag (e.g. "image-id") to what
 * commander parsed. Throws CliError subclasses; prints the result to stdout.
 */
export async function runCommand<Req, Res, Seen extends Observation>(
  spec: CommandSpec<Req, Res, Seen>,
  values: Record<string, unknown>,
  ctx: RunContext,
): Promise<void> {
  const given = requestFields(spec.params, values);
  const fields = spec.prepare ? spec.prepare(given, { region: ctx.region }) : given;
  const request = toMessage(spec.request, fields);
  // Checked before the call: a bad --wait-timeout must not fail after a launch.
  const waitMs = spec.wait && values[WAIT_FLAG] === true ? waitTimeoutMs(values) : undefined;
  // An explicit page request means the user is paging by hand, as in the aws CLI.
  const onePage = !spec.paginate || "MaxResults" in fields || "NextToken" in fields;
  const response = onePage ? await ctx.api.call(spec.rpc, request) : await fetchAllPages(ctx.api, spec.rpc, request, spec.listKey);
  if (!spec.wait || waitMs === undefined) {
    ctx.stdout(render(spec, response, ctx.output, ctx.query));
    return;
  }
  const w = spec.wait;
  const result = await poll(ctx, w.waiter, w.ids(request, response), w.observe, waitMs);
  // Print what we have even when the wait failed: the resources exist and a
  // script needs their ids to clean up.
  ctx.stdout(render(spec, w.finalize(response, result.seen), ctx.output, ctx.query));
  if (result.failure) throw result.failure;
}

/**
 * Runs `cirrus wait <name>`: resolves once every resource named is in the
 * waiter's target state, printing nothing (as `aws ec2 wait`); throws the
 * WaiterError (exit 255) when it fails or times out.
 */
export async function runWait(spec: WaitCommandSpec, values: Record<string, unknown>, ctx: RunContext): Promise<void> {
  const ids = requestFields([spec.ids], values)[fieldName(spec.ids.flag)] as string[];
  const result = await poll(ctx, spec.waiter, ids, spec.observe, waitTimeoutMs(values));
  if (result.failure) throw result.failure;
}

/** `waitUntil` with the context's API, progress sink and clock. */
function poll<Seen extends Observation>(ctx: RunContext, waiter: Waiter, ids: readonly string[], observe: ObserveFn<Seen>, timeoutMs: number): Promise<WaitResult<Seen>> {
  return waitUntil({
    waiter,
    ids,
    describe: (some) => observe(ctx.api, some),
    timeoutMs,
    pollMs: ctx.pollMs,
    progress: ctx.progress,
    ...(ctx.sleep ? { sleep: ctx.sleep } : {}),
    ...(ctx.now ? { now: ctx.now } : {}),
  });
}

/** Formats a response for the chosen --output, after --query when given (as the aws CLI does). */
export function render<Req, Res, Seen extends Observation>(spec: CommandSpec<Req, Res, Seen>, response: Res, format: OutputFormat, query?: Query): string {
  if (format !== "json" && spec.raw && !query) return spec.raw(response);
  let json = messageJson(response, spec.response.toJSON(response)) as JsonObject;
  if (spec.listKey && json[spec.listKey] === undefined) json = { [spec.listKey]: [], ...json };
  if (spec.present) json = spec.present(json);
  if (query) {
    const selected = evaluate(query, json);
    if (format === "json") return `${JSON.stringify(selected, null, 4)}\n`;
    return format === "text" ? formatText(selected) : formatTable(valueGrid(selected));
  }
  if (format === "json") return formatJson(json);
  if (format === "text") return formatText(json);
  return formatTable(spec.table ? spec.table(response) : scalarGrid(json));
}

/**
 * Calls a paginated Describe* until NextToken runs out, concatenating the
 * resource lists; the merged response has no NextToken, as the aws CLI's
 * output after auto-pagination.
 */
export async function fetchAllPages<Req, Res>(api: ComputeApi, rpc: Rpc<Req, Res>, request: Req, listKey: string | undefined): Promise<Res> {
  type Page = Record<string, unknown> & { NextToken?: string };
  let merged = (await api.call(rpc, request)) as Page;
  const tokens = new Set<string>();
  while (merged.NextToken && listKey) {
    // A server handing back a token twice would loop forever; stop instead.
    if (tokens.has(merged.NextToken)) throw new CliError(`The server repeated NextToken ${merged.NextToken}; stopping.`, ExitCode.general);
    tokens.add(merged.NextToken);
    const page = (await api.call(rpc, { ...request, NextToken: merged.NextToken })) as Page;
    const list = (r: Page) => (r[listKey] as unknown[] | undefined) ?? [];
    merged = { ...page, [listKey]: [...list(merged), ...list(page)] };
  }
  return merged as Res;
}
