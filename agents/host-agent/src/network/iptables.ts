// Applies our part of a table atomically: `iptables-restore --noflush` (or
// ebtables-restore, for the bridge family) with only our chains in it, so
// the host's other rules are never touched. The current state is read back
// with `iptables-save` first and nothing is applied when our chains already
// hold exactly the wanted rules; that comparison is what lets the reconcile
// loop restore rules flushed by hand at no cost when they are intact. Both
// tools are the nf_tables front ends of Debian's iptables package and speak
// the same save/restore format, but for how a chain is declared.
import type { CommandRunner } from "../runner/types.js";
import type { Jump, TableRules } from "./firewall-rules.js";

/** Our part of a table as `iptables-save` shows it. */
export interface SavedTable {
  /** Each of our chains with its rules ("-A CHAIN …" lines), in order. */
  chains: Map<string, string[]>;
  /** "FROM>TO" for each jump from a chain that is not ours into one of ours. */
  jumps: Set<string>;
}

const jumpKey = (j: Jump) => `${j.from}>${j.to}`;

/**
 * Pure. Extracts from `iptables-save -t <table>` output the chains for which
 * isOwn is true, their rules, and the plain jumps (`-A X -j OURS`) into them.
 */
export function parseSave(text: string, isOwn: (chain: string) => boolean): SavedTable {
  const saved: SavedTable = { chains: new Map(), jumps: new Set() };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const declared = /^:(\S+) /.exec(line);
    if (declared) {
      if (isOwn(declared[1]!) && !saved.chains.has(declared[1]!)) saved.chains.set(declared[1]!, []);
      continue;
    }
    const rule = /^-A (\S+) /.exec(line);
    if (!rule) continue;
    const chain = rule[1]!;
    if (isOwn(chain)) {
      const rules = saved.chains.get(chain) ?? [];
      rules.push(line.replace(/\s+/g, " "));
      saved.chains.set(chain, rules);
      continue;
    }
    const jump = /^-A (\S+) -j (\S+)$/.exec(line);
    if (jump && isOwn(jump[2]!)) saved.jumps.add(`${jump[1]}>${jump[2]}`);
  }
  return saved;
}

function sameRules(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((r, i) => r === b[i]);
}

/**
 * Pure. The iptables-restore script (for --noflush) that turns `saved` into
 * `wanted`, or undefined when they are already equal. The script declares
 * (and so flushes) every wanted chain and refills it, inserts missing jumps
 * at the top of their built-in chain, and removes our chains that are no
 * longer wanted, with the jumps into them; it runs as one transaction.
 */
/** How each family's tools are called, and how a restore script declares (and so flushes) a chain. */
const TOOLS = {
  ipv4: { save: ["iptables-save"], restore: ["iptables-restore", "--noflush", "--wait", "5"], declare: (chain: string) => `:${chain} - [0:0]` },
  // A user chain's policy is what its end does: RETURN, as an iptables chain.
  bridge: { save: ["ebtables-save"], restore: ["ebtables-restore", "--noflush"], declare: (chain: string) => `:${chain} RETURN` },
} as const;

export function restoreScript(wanted: TableRules, saved: SavedTable): string | undefined {
  const missingJumps = wanted.jumps.filter((j) => !saved.jumps.has(jumpKey(j)));
  const stale = [...saved.chains.keys()].filter((c) => !wanted.chains.has(c));
  const changed = [...wanted.chains].some(([chain, rules]) => !sameRules(rules, saved.chains.get(chain)));
  if (!changed && missingJumps.length === 0 && stale.length === 0) return undefined;

  const lines = [`*${wanted.table}`];
  for (const chain of [...wanted.chains.keys(), ...stale]) lines.push(TOOLS[wanted.family].declare(chain));
  for (const rules of wanted.chains.values()) lines.push(...rules);
  // Reversed, so that inserting each at position 1 leaves them in the listed order.
  for (const j of [...missingJumps].reverse()) lines.push(`-I ${j.from} 1 -j ${j.to}`);
  for (const key of saved.jumps) {
    const [from, to] = key.split(">") as [string, string];
    if (stale.includes(to)) lines.push(`-D ${from} -j ${to}`);
  }
  for (const chain of stale) lines.push(`-X ${chain}`);
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** `iptables-save -t <table>` (or ebtables-save's) output. */
export async function saveTable(runner: CommandRunner, family: TableRules["family"], table: string): Promise<string> {
  return (await runner.run([...TOOLS[family].save, "-t", table])).stdout.toString("utf8");
}

/**
 * Postcondition: our chains of `wanted.table` hold exactly `wanted`, the
 * jumps into them exist, and our chains not in `wanted` are gone; other
 * chains and rules are unchanged. Returns whether anything was applied.
 * `saved`: that table's iptables-save output, read by the caller just
 * before (so reads of several tables can run together); read here when absent.
 */
export async function applyTable(runner: CommandRunner, wanted: TableRules, isOwn: (chain: string) => boolean, saved?: string): Promise<boolean> {
  const script = restoreScript(wanted, parseSave(saved ?? (await saveTable(runner, wanted.family, wanted.table)), isOwn));
  if (script === undefined) return false;
  await runner.run([...TOOLS[wanted.family].restore], { input: script, timeoutMs: 30_000 });
  return true;
}
