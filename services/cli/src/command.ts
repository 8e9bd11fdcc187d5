// One generic way to run any command: a command is a declarative spec (its
// RPC, options, resource list, table view, optional waiter; derived from the
// operation table in commands/), and `runCommand` does the rest — build the
// request, call (following NextToken), wait, print.
import type { ComputeApi, Rpc } from "./client.js";
import { CliError, ExitCode, parameterError } from "./errors.js";
import { formatJson, formatTable, formatText, messageJson, scalarGrid, valueGrid, type Grid, type JsonObject, type OutputFormat } from "./output.js";
import { fieldName, paramFields, toMessage, type JsonMessageFns, type ParamSpec } from "./params.js";
import { evaluate, type Query } from "./query.js";
import { waitForInstances, type Observation, type ProgressSink, type WaitTarget } from "./wait.js";

/** How `--wait` works for a command whose instances change state. */
export interface WaitSpec<Req, Res, Seen extends Observation> {
  target: WaitTarget;
  /** The instances to wait for. */
  instanceIds(request: Req, response: Res): string[];
  /** Current observations of the instances (an id absent from the map was not found). */
  observe(api: ComputeApi, ids: readonly string[]): Promise<Map<string, Seen>>;
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
   * `--protocol tcp --port 22` → IpPermissions). Throws UsageError on bad input.
   */
  prepare?: (fields: Record<string, unknown>) => Record<string, unknown>;
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

const WAIT: ParamSpec = { flag: "wait", kind: "flag", description: "wait until every instance reaches its target state, showing progress on stderr" };
const WAIT_TIMEOUT: ParamSpec = {
  flag: "wait-timeout",
  kind: "integer",
  valueName: "seconds",
  description: "give up waiting after this many seconds",
  defaultValue: "600",
};

/** The options a command with a waiter gets (they configure the CLI, not the request). */
export const WAIT_PARAMS: ParamSpec[] = [WAIT, WAIT_TIMEOUT];

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
  const fields = spec.prepare ? spec.prepare(given) : given;
  const request = toMessage(spec.request, fields);
  // Checked before the call: a bad --wait-timeout must not fail after a launch.
  const waitMs = spec.wait && values[WAIT.flag] === true ? waitTimeoutMs(values) : undefined;
  // An explicit page request means the user is paging by hand, as in the aws CLI.
  const onePage = !spec.paginate || "MaxResults" in fields || "NextToken" in fields;
  const response = onePage ? await ctx.api.call(spec.rpc, request) : await fetchAllPages(ctx.api, spec.rpc, request, spec.listKey);
  if (!spec.wait || waitMs === undefined) {
    ctx.stdout(render(spec, response, ctx.output, ctx.query));
    return;
  }
  const w = spec.wait;
  const result = await waitForInstances({
    target: w.target,
    ids: w.instanceIds(request, response),
    describe: (ids) => w.observe(ctx.api, ids),
    timeoutMs: waitMs,
    pollMs: ctx.pollMs,
    progress: ctx.progress,
    ...(ctx.sleep ? { sleep: ctx.sleep } : {}),
    ...(ctx.now ? { now: ctx.now } : {}),
  });
  // Print what we have even when the wait failed: the instances exist and a
  // script needs their ids to clean up.
  ctx.stdout(render(spec, w.finalize(response, result.seen), ctx.output, ctx.query));
  if (result.failure) throw result.failure;
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
