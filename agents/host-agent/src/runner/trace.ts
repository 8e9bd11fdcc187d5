// Which host commands one operation ran, and how long each took: the view
// that says where a CreateInstance's time goes. Runners report every command
// they finish to the trace of the operation it belongs to (an
// AsyncLocalStorage context, so commands run by the host network under its
// own lock count for the call that waits on them). Outside a trace,
// reporting costs one lookup.
import { AsyncLocalStorage } from "node:async_hooks";

export interface CommandTiming {
  /** The command, shortened for logs (long arguments cut, at most 12 of them). */
  argv: string[];
  /** When it started, in ms after the trace began. */
  atMs: number;
  ms: number;
  /** Exit code; -1 when it timed out or could not start. */
  code: number;
  /** The phase of the operation it started in (see CommandTrace.phase), or the scope it ran in (see traceScope). */
  phase?: string;
}

export interface PhaseTiming {
  name: string;
  atMs: number;
  /** Until the next phase began, or the trace ended. */
  ms: number;
}

export class CommandTrace {
  readonly commands: CommandTiming[] = [];
  private readonly marks: Array<{ name: string; at: number }> = [];
  /** Work that ran alongside the phases, by name: how long each took. */
  readonly spans: Record<string, number> = {};
  private readonly started = performance.now();

  /** Milliseconds since the trace began. */
  elapsed(): number {
    return round(performance.now() - this.started);
  }

  /** Starts the named phase of the operation (ending the one before). */
  phase(name: string): void {
    this.marks.push({ name, at: performance.now() });
  }

  /** The phases so far, each lasting until the next began (the last: until now). */
  phases(): PhaseTiming[] {
    const now = performance.now();
    return this.marks.map((m, i) => ({ name: m.name, atMs: round(m.at - this.started), ms: round((this.marks[i + 1]?.at ?? now) - m.at) }));
  }

  record(argv: readonly string[], startedAt: number, code: number, scope?: string): void {
    const end = performance.now();
    let phase = scope;
    if (phase === undefined) for (const m of this.marks) if (m.at <= startedAt) phase = m.name;
    this.commands.push({ argv: shortArgv(argv), atMs: round(startedAt - this.started), ms: round(end - startedAt), code, ...(phase && { phase }) });
  }
}

const current = new AsyncLocalStorage<{ trace: CommandTrace; scope?: string }>();

/** The current operation's trace, if any: for marking phases. */
export function currentTrace(): CommandTrace | undefined {
  return current.getStore()?.trace;
}

/**
 * Runs fn in the current trace (if any) with its commands labelled `scope`
 * instead of the phase they start in: for work that runs alongside the
 * phases (the host network's part of a create).
 */
export function traceScope<T>(scope: string, fn: () => Promise<T>): Promise<T> {
  const store = current.getStore();
  if (!store) return fn();
  const started = performance.now();
  return current.run({ trace: store.trace, scope }, fn).finally(() => {
    store.trace.spans[scope] = round(performance.now() - started);
  });
}

/** Runs fn with a fresh trace collecting every command run on its behalf; returns the trace with fn's outcome. */
export async function traced<T>(fn: () => Promise<T>): Promise<{ trace: CommandTrace; result: PromiseSettledResult<T> }> {
  const trace = new CommandTrace();
  const result = await current.run({ trace }, () => fn().then(
    (value): PromiseSettledResult<T> => ({ status: "fulfilled", value }),
    (reason: unknown): PromiseSettledResult<T> => ({ status: "rejected", reason }),
  ));
  return { trace, result };
}

/**
 * For runners: call when a command starts; the returned function, called
 * when it ends, records it in the current trace (a no-op outside one).
 */
export function commandStarted(argv: readonly string[]): (code: number) => void {
  const store = current.getStore();
  if (!store) return noop;
  const at = performance.now();
  return (code) => store.trace.record(argv, at, code, store.scope);
}

function noop(): void {}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function shortArgv(argv: readonly string[]): string[] {
  return argv.slice(0, 12).map((a) => (a.length > 120 ? `${a.slice(0, 117)}...` : a));
}
