// `--wait`: poll DescribeInstances until every instance reaches a target state.
// The verdict on one round of observations is a pure function (`judge`), so
// the rules are testable without a server or a clock; `waitForInstances` is
// the loop around it.
import { EndpointError, WaiterError } from "./errors.js";

export type WaitTarget = "running" | "stopped" | "terminated";

/** The aws CLI's waiter names, used in failure messages. */
export const WAITER_NAMES: Record<WaitTarget, string> = {
  running: "InstanceRunning",
  stopped: "InstanceStopped",
  terminated: "InstanceTerminated",
};

/**
 * States from which the target cannot be reached without another request, so
 * waiting longer is pointless. These are botocore's waiter failure states,
 * with two deliberate differences: shutting-down also fails "stopped" (it only
 * leads to terminated), and nothing fails "terminated" (terminating a pending
 * or stopping instance legitimately passes through those states).
 */
export const FAILURE_STATES: Record<WaitTarget, readonly string[]> = {
  running: ["shutting-down", "terminated", "stopping"],
  stopped: ["pending", "shutting-down", "terminated"],
  terminated: [],
};

/** What one poll saw of an instance; absent from the map = not found. */
export interface Observation {
  state: string;
  /** StateReason.Message, shown when the instance ends in a failure state. */
  reason?: string;
}

export type Verdict =
  | { kind: "done" }
  | { kind: "waiting"; remaining: string[] }
  | { kind: "failed"; failures: { instanceId: string; state: string; reason?: string }[] };

/** Shown for an instance DescribeInstances no longer returns. */
export const NOT_FOUND = "not found";

/**
 * Judges one round: failed if any instance is in a failure state (or has
 * vanished, unless we wait for terminated — a terminated instance that has
 * been purged is terminated), done when all are in the target state, else
 * waiting for the rest.
 */
export function judge(target: WaitTarget, ids: readonly string[], seen: ReadonlyMap<string, Observation>): Verdict {
  const failures: { instanceId: string; state: string; reason?: string }[] = [];
  const remaining: string[] = [];
  for (const id of ids) {
    const o = seen.get(id);
    if (!o) {
      if (target !== "terminated") failures.push({ instanceId: id, state: NOT_FOUND });
    } else if (FAILURE_STATES[target].includes(o.state)) {
      failures.push({ instanceId: id, state: o.state, ...(o.reason ? { reason: o.reason } : {}) });
    } else if (o.state !== target) {
      remaining.push(id);
    }
  }
  if (failures.length > 0) return { kind: "failed", failures };
  return remaining.length > 0 ? { kind: "waiting", remaining } : { kind: "done" };
}

function stateOf(seen: ReadonlyMap<string, Observation>, id: string): string {
  return seen.get(id)?.state ?? NOT_FOUND;
}

/** One line per instance whose state changed since the last poll: "i-0abc pending → running (12s)". */
export function stateChangeLines(
  ids: readonly string[],
  before: ReadonlyMap<string, Observation> | undefined,
  now: ReadonlyMap<string, Observation>,
  elapsedSeconds: number,
): string[] {
  const lines: string[] = [];
  for (const id of ids) {
    const to = stateOf(now, id);
    if (!before) lines.push(`${id} ${to} (${elapsedSeconds}s)`);
    else if (stateOf(before, id) !== to) lines.push(`${id} ${stateOf(before, id)} → ${to} (${elapsedSeconds}s)`);
  }
  return lines;
}

/** The single status line shown on a terminal: "Waiting for 3 instances to be running: 2 running, 1 pending (12s)". */
export function summaryLine(target: WaitTarget, ids: readonly string[], seen: ReadonlyMap<string, Observation>, elapsedSeconds: number): string {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(stateOf(seen, id), (counts.get(stateOf(seen, id)) ?? 0) + 1);
  const parts = [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
  const what = ids.length === 1 ? ids[0] : `${ids.length} instances`;
  return `Waiting for ${what} to be ${target}: ${parts} (${elapsedSeconds}s)`;
}

/** Where progress goes: state-change lines on a pipe, one rewritten line on a terminal. */
export interface ProgressSink {
  write(text: string): void;
  isTTY: boolean;
}

export interface WaitOptions<T extends Observation> {
  target: WaitTarget;
  ids: readonly string[];
  /** Current observations of `ids`; an id missing from the result was not found. */
  describe(ids: readonly string[]): Promise<Map<string, T>>;
  timeoutMs: number;
  pollMs: number;
  progress: ProgressSink;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface WaitResult<T extends Observation> {
  /** The last observations (what the final output is built from). */
  seen: Map<string, T>;
  /** Set when the wait failed; the caller still prints what it has. */
  failure?: WaiterError;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls until `judge` says done or failed, or the timeout passes. A lost
 * connection while polling is retried until the timeout (the API may be
 * restarting); anything else the describe call throws ends the wait.
 */
export async function waitForInstances<T extends Observation>(o: WaitOptions<T>): Promise<WaitResult<T>> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? realSleep;
  const name = WAITER_NAMES[o.target];
  const start = now();
  const elapsed = () => Math.round((now() - start) / 1000);
  let seen: Map<string, T> | undefined;
  const finish = (failure?: WaiterError): WaitResult<T> => {
    if (o.progress.isTTY && seen) o.progress.write("\n");
    return { seen: seen ?? new Map(), ...(failure ? { failure } : {}) };
  };
  for (;;) {
    try {
      const next = await o.describe(o.ids);
      if (o.progress.isTTY) o.progress.write(`\r\x1b[K${summaryLine(o.target, o.ids, next, elapsed())}`);
      else for (const line of stateChangeLines(o.ids, seen, next, elapsed())) o.progress.write(`${line}\n`);
      seen = next;
    } catch (err) {
      if (!(err instanceof EndpointError) || now() - start >= o.timeoutMs) throw err;
    }
    const verdict = seen ? judge(o.target, o.ids, seen) : undefined;
    if (verdict?.kind === "done") return finish();
    if (verdict?.kind === "failed") {
      const what = verdict.failures.map((f) => `${f.instanceId} is ${f.state}${f.reason ? ` (${f.reason})` : ""}`);
      return finish(new WaiterError(name, `${what.join("; ")} while waiting for ${o.target}`));
    }
    if (now() - start >= o.timeoutMs) {
      const still = (verdict?.kind === "waiting" ? verdict.remaining : o.ids).map((id) => `${id} (${seen ? stateOf(seen, id) : "unknown"})`);
      return finish(new WaiterError(name, `Max wait time of ${Math.round(o.timeoutMs / 1000)}s exceeded; still waiting for ${still.join(", ")}`));
    }
    await sleep(o.pollMs);
  }
}
