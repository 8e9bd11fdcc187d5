// `--query`: the subset of JMESPath that scripts use to pull values out of a
// response, with JMESPath's semantics for it:
//
//   KeyMaterial                                   a member
//   Vpc.VpcId                                     a nested member
//   Reservations[0].Instances[0].InstanceId       list indexes (negative counts from the end)
//   Reservations[*].Instances[*].InstanceId       projections (nested lists)
//   Reservations[].Instances[].InstanceId         flatten projections (one flat list)
//
// A projection applies the rest of the expression to every element and drops
// nulls; `[]` flattens everything to its left one level first. A member of a
// non-object, or an index into a non-list, is null. Anything else (filters,
// multi-select, functions, pipes) is refused before the call is made.
import { UsageError } from "./errors.js";
import type { Json } from "./output.js";

type Step = { kind: "field"; name: string } | { kind: "index"; index: number } | { kind: "project" } | { kind: "flatten" };

/** A parsed --query expression. */
export interface Query {
  readonly source: string;
  readonly steps: readonly Step[];
}

const TOKEN = /\.?([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]|\[\*\]|\[\]/y;

/** Parses `expression`; throws a UsageError (exit 252) for anything outside the subset. */
export function parseQuery(expression: string): Query {
  const s = expression.trim();
  const steps: Step[] = [];
  let at = 0;
  while (at < s.length) {
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(s);
    // A member needs a "." before it except at the start.
    if (!m || (m[1] !== undefined && at > 0 && s[at] !== ".") || (at === 0 && s[0] === ".")) {
      throw new UsageError(
        `Bad value for --query ${expression}: unsupported expression at '${s.slice(at)}'. ` +
          "Supported: member paths with [N], [*] and [] (e.g. Reservations[*].Instances[*].InstanceId)",
      );
    }
    if (m[1] !== undefined) steps.push({ kind: "field", name: m[1] });
    else if (m[2] !== undefined) steps.push({ kind: "index", index: Number(m[2]) });
    else steps.push({ kind: m[0] === "[*]" ? "project" : "flatten" });
    at = TOKEN.lastIndex;
  }
  if (steps.length === 0) throw new UsageError(`Bad value for --query ${expression}: the expression is empty`);
  return { source: expression, steps };
}

function isObject(v: Json): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Applies steps without `[]` (which `evaluate` handles at the top level). */
function applySegment(steps: readonly Step[], value: Json): Json {
  let v = value;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    if (step.kind === "field") {
      v = isObject(v) ? (v[step.name] ?? null) : null;
    } else if (step.kind === "index") {
      v = Array.isArray(v) ? (v[step.index < 0 ? v.length + step.index : step.index] ?? null) : null;
    } else {
      if (!Array.isArray(v)) return null;
      const rest = steps.slice(i + 1);
      return v.map((e) => applySegment(rest, e)).filter((e) => e !== null);
    }
  }
  return v;
}

/** The value `query` selects from `json` (null when nothing matches, as in JMESPath). */
export function evaluate(query: Query, json: Json): Json {
  // `[]` flattens all that is to its left, then projects what is to its right.
  const segments: Step[][] = [[]];
  for (const step of query.steps) {
    if (step.kind === "flatten") segments.push([]);
    else segments[segments.length - 1]!.push(step);
  }
  let v = applySegment(segments[0]!, json);
  for (const segment of segments.slice(1)) {
    if (!Array.isArray(v)) return null;
    const flat = v.flatMap((e) => (Array.isArray(e) ? e : [e]));
    v = flat.map((e) => applySegment(segment, e)).filter((e) => e !== null);
  }
  return v;
}
