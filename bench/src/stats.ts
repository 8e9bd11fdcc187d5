// What the benchmarks share: the round schedule (an uncounted
// warm-up round, then rounds alternating which side goes first), summary
// statistics, the report, and the raw launch (`qemu-img create` + `virsh
// create` of a domain XML).
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { promisify } from "node:util";

const exec = promisify(execFile);

export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
}

/** Nearest-rank percentile (0 < p ≤ 100) of xs. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new Error("percentile of nothing");
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(xs: readonly number[]): Summary {
  return { n: xs.length, min: Math.min(...xs), median: median(xs), p90: percentile(xs, 90), max: Math.max(...xs) };
}

const f0 = (ms: number) => `${ms.toFixed(0)} ms`;

/** A table of the sides' summaries and the ratio of the first side's median to the last's. */
export function report(title: string, sides: ReadonlyArray<{ name: string; ms: readonly number[] }>, reproduce: string): string {
  const rows = sides.map((s) => ({ name: s.name, ...summarize(s.ms) }));
  const width = Math.max(...rows.map((r) => r.name.length));
  const lines = [
    "",
    title,
    `${"".padEnd(width)}  ${"n".padStart(3)}  ${"min".padStart(8)}  ${"median".padStart(8)}  ${"p90".padStart(8)}  ${"max".padStart(8)}`,
    ...rows.map((r) => `${r.name.padEnd(width)}  ${String(r.n).padStart(3)}  ${f0(r.min).padStart(8)}  ${f0(r.median).padStart(8)}  ${f0(r.p90).padStart(8)}  ${f0(r.max).padStart(8)}`),
  ];
  const first = rows[0]!;
  const last = rows.at(-1)!;
  lines.push(`ratio of medians ${first.name} / ${last.name}: ${(first.median / last.median).toFixed(2)}x`);
  lines.push(`reproduce: ${reproduce}`);
  return lines.join("\n");
}

/**
 * Round 0 is the warm-up (not counted); in round r the sides run in the
 * order given when r is even and reversed when r is odd, so neither side
 * always runs right after the other's cleanup.
 */
export function orderOf<T>(round: number, sides: readonly T[]): T[] {
  return round % 2 === 0 ? [...sides] : [...sides].reverse();
}

/** One side of a comparison: what it is called and how one round of it runs (resolving with its milliseconds). */
export interface Side {
  name: string;
  run(round: number): Promise<number>;
}

/**
 * Runs a warm-up round and then `rounds` counted rounds of every side, in
 * the alternating order of `orderOf`, printing each round; resolves with
 * the counted milliseconds of each side, in the order given.
 */
export async function runRounds(rounds: number, sides: readonly Side[]): Promise<{ name: string; ms: number[] }[]> {
  const out = sides.map((s) => ({ name: s.name, ms: [] as number[] }));
  for (let round = 0; round <= rounds; round++) {
    const line: string[] = [];
    for (const side of orderOf(round, sides)) {
      const ms = await side.run(round);
      if (round > 0) out[sides.indexOf(side)]!.ms.push(ms);
      line.push(`${side.name} ${ms.toFixed(0)} ms`);
    }
    console.log(`${round === 0 ? "warm-up" : `round ${round}`}: ${line.join(", ")}`);
  }
  return out;
}

/** `--name=value` or `--name value` from argv, else the fallback. */
export function option(argv: readonly string[], name: string, fallback: string): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) return argv[i + 1] ?? fallback;
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return fallback;
}

/** The positional rounds argument or --rounds; at least 1. */
export function roundsOf(argv: readonly string[], fallback: number): number {
  const positional = argv.find((a, i) => /^\d+$/.test(a) && !(argv[i - 1] ?? "").startsWith("--") );
  const n = Number(option(argv, "rounds", positional ?? String(fallback)));
  if (!Number.isInteger(n) || n < 1) throw new Error(`rounds must be a positive integer, got ${n}`);
  return n;
}

export const LIBVIRT_URI = "qemu:///system";

export function virsh(...args: string[]): Promise<string> {
  return exec("virsh", ["-c", LIBVIRT_URI, ...args], { encoding: "utf8" }).then((r) => r.stdout);
}

/**
 * The physical minimum of a launch, timed: `qemu-img create` of the overlay
 * on `backing`, then `virsh create` of the XML file (written beforehand).
 * Resolves with the milliseconds both took.
 */
export async function rawLaunch(backing: string, overlay: string, sizeGib: number, xmlFile: string): Promise<number> {
  const t0 = performance.now();
  await exec("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, overlay, `${sizeGib}G`]);
  await exec("virsh", ["-c", LIBVIRT_URI, "create", xmlFile]);
  return performance.now() - t0;
}

/** An XML for a raw launch of the same domain: every occurrence of each key replaced by its value (names, paths, uuid, tap, MAC). */
export function rewriteXml(xml: string, replacements: ReadonlyArray<readonly [string, string]>): string {
  let out = xml;
  for (const [from, to] of replacements) {
    if (!out.includes(from)) throw new Error(`domain XML does not contain ${JSON.stringify(from)}`);
    out = out.replaceAll(from, to);
  }
  return out;
}

/** A short label for a command: the program and its sub-command or first flags, no paths, ids or values. */
export function commandLabel(argv: readonly string[]): string {
  const a = [...argv];
  // `env LC_ALL=C virsh …` is virsh.
  while (a.length > 1 && (a[0] === "env" || /^[A-Z_]+=/.test(a[0]!))) a.shift();
  if (a[0] === "virsh") {
    const rest = a.slice(1);
    const sub = rest.findIndex((x, i) => !x.startsWith("-") && rest[i - 1] !== "-c");
    // One string holding several commands ("'define' … ; 'start' …"): name each.
    const text = rest[sub] ?? "";
    if (text.includes(" ")) return `virsh ${text.split(";").map((c) => c.trim().split(/\s+/)[0]!.replaceAll("'", "")).join("; ")}`;
    return `virsh ${text}`.trim();
  }
  const words = [a[0] ?? "?"];
  for (const x of a.slice(1)) {
    if (words.length >= 3 || x === "--" || x.includes("/") || /\d/.test(x) || x.length > 24) break;
    words.push(x);
  }
  return words.join(" ");
}

/**
 * CPU seconds (user + system) a process and its children that have exited
 * have used so far, from /proc; 0 when it is gone. The children count so
 * that a server forking a process per connection (Postgres) is measured
 * whole: a backend's CPU does not vanish from the sum when it exits.
 */
export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime, stime, cutime and cstime are the 12th to 15th fields after the command name, in clock ticks (100 Hz on Linux).
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return 0;
  }
}

/** The pids of every process whose command name is `name` (e.g. postgres). */
export function pidsOf(name: string): number[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === name;
    } catch {
      return false;
    }
  });
}
