// `--wait` and `cirrus wait`: poll a Describe until every resource reaches a
// waiter's target state. The verdict on one round of observations is a pure
// function (`judge`), so the rules are testable without a server or a clock;
// `waitUntil` is the loop around it. The waiters themselves (which states,
// which Describe) are in commands/waiters.ts.
import { EndpointError, WaiterError } from "./errors.js";

/** What to wait for: one of the aws CLI's waiters, as Cirrus applies it. */
export interface Waiter {
  /** The aws CLI's waiter name, used in failure messages: "InstanceRunning". */
  readonly name: string;
  /** The state every resource must reach. */
  readonly target: string;
  /** States from which the target cannot be reached without another request, so waiting longer is pointless. */
  readonly failure: readonly string[];
  /**
   * Whether a resource the Describe no longer returns has reached the target
   * (a terminated instance that has been purged is terminated; a deleted
   * volume is gone). Otherwise its vanishing fails the wait.
   */
  readonly goneIsDone: boolean;
  /** What the resources are, for the status line: "instance". */
  readonly noun: string;
}

/** What one poll saw of a resource; absent from the map = not found. */
export interface Observation {
  state: string;
  /** Why it is in its state (StateReason.Message, StateMessage), shown when it ends in a failure state. */
  reason?: string;
}

export interface Failure {
  id: string;
  state: string;
  reason?: string;
}

export type Verdict = { kind: "done" } | { kind: "waiting"; remaining: string[] } | { kind: "failed"; failures: Failure[] };

/** Shown for a resource the Describe no longer returns. */
export const NOT_FOUND = "not found";

/**
 * Judges one round: failed if any resource is in one of the waiter's failure
 * states (or has vanished, unless vanishing counts as reaching the target),
 * done when all are in the target state, else waiting for the rest.
 */
export function judge(waiter: Waiter, ids: readonly string[], seen: ReadonlyMap<string, Observation>): Verdict {
  const failures: Failure[] = [];
  const remaining: string[] = [];
  for (const id of ids) {
    const o = seen.get(id);
    if (!o) {
      if (!waiter.goneIsDone) failures.push({ id, state: NOT_FOUND });
    } else if (waiter.failure.includes(o.state)) {
      failures.push({ id, state: o.state, ...(o.reason ? { reason: o.reason } : {}) });
    } else if (o.state !== waiter.target) {
      remaining.push(id);
    }
  }
  if (failures.length > 0) return { kind: "failed", failures };
  return remaining.length > 0 ? { kind: "waiting", remaining } : { kind: "done" };
}

function stateOf(seen: ReadonlyMap<string, Observation>, id: string): string {
  return seen.get(id)?.state ?? NOT_FOUND;
}

/** One line per resource whose state changed since the last poll: "i-0abc pending → running (12s)". */
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
export function summaryLine(waiter: Waiter, ids: readonly string[], seen: ReadonlyMap<string, Observation>, elapsedSeconds: number): string {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(stateOf(seen, id), (counts.get(stateOf(seen, id)) ?? 0) + 1);
  const parts = [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
  const what = ids.length === 1 ? ids[0] : `${ids.length} ${waiter.noun}s`;
  return `Waiting for ${what} to be ${waiter.target}: ${parts} (${elapsedSeconds}s)`;
}

/** Where progress goes: state-change lines on a pipe, one rewritten line on a terminal. */
export interface ProgressSink {
  write(text: string): void;
  isTTY: boolean;
}

export interface WaitOptions<T extends Observation> {
  waiter: Waiter;
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
export async function waitUntil<T extends Observation>(o: WaitOptions<T>): Promise<WaitResult<T>> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? realSleep;
  const { name, target } = o.waiter;
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
      if (o.progress.isTTY) o.progress.write(`\r\x1b[K${summaryLine(o.waiter, o.ids, next, elapsed())}`);
      else for (const line of stateChangeLines(o.ids, seen, next, elapsed())) o.progress.write(`${line}\n`);
      seen = next;
    } catch (err) {
      if (!(err instanceof EndpointError) || now() - start >= o.timeoutMs) throw err;
    }
    const verdict = seen ? judge(o.waiter, o.ids, seen) : undefined;
    if (verdict?.kind === "done") return finish();
    if (verdict?.kind === "failed") {
      const what = verdict.failures.map((f) => `${f.id} is ${f.state}${f.reason ? ` (${f.reason})` : ""}`);
      return finish(new WaiterError(name, `${what.join("; ")} while waiting for ${target}`));
    }
    if (now() - start >= o.timeoutMs) {
      const still = (verdict?.kind === "waiting" ? verdict.remaining : o.ids).map((id) => `${id} (${seen ? stateOf(seen, id) : "unknown"})`);
      return finish(new WaiterError(name, `Max wait time of ${Math.round(o.timeoutMs / 1000)}s exceeded; still waiting for ${still.join(", ")}`));
    }
    await sleep(o.pollMs);
  }
}
