// `--query`: full JMESPath (https://jmespath.org), as in the aws CLI, via the
// `jmespath` package (the JMESPath project's JavaScript implementation). Like
// the aws CLI we compile the expression while reading the command line, so a
// bad one is refused (exit 252) before any call is made, and evaluate it on
// the response JSON just before printing. Evaluation is the package's, with
// one known difference from the aws CLI's Python jmespath: ordering
// comparisons with null use JavaScript's (`null < 5` is true, not null).
//
// This file is only the adapter between that package and the CLI's errors:
//
// - jmespath 0.16's typings declare only `search`, so `compile` and
//   `tokenize` (both exported by the package) are declared below.
// - Its parser is more lenient than the spec (and than the Python
//   implementation the aws CLI uses): it accepts a few invalid expressions
//   by leaving holes in the AST (`Vpc.`, `a..b`, `()`), or crashes on a lone
//   `=`. `defect` refuses those up front; otherwise they would fail only
//   after the call, with a JavaScript TypeError. Missing commas (`[a b]`)
//   and an unterminated `'string` are still accepted, harmlessly.
// - Unknown function names are refused up front too. The aws CLI finds them
//   only while evaluating (exit 255, after a possibly mutating call), but a
//   misspelt function is a command-line mistake, like a syntax error.
// - Errors while evaluating (a function given the wrong type or number of
//   arguments, a slice step of 0) become a CliError with exit 255, which is
//   what the aws CLI exits with for them.
import { compile, search, tokenize } from "jmespath";
import { CliError, ExitCode, UsageError } from "./errors.js";
import type { Json } from "./output.js";

declare module "jmespath" {
  /** Parses `expression` into its AST; throws on invalid syntax. */
  export function compile(expression: string): unknown;
  /** The tokens of `expression` (jmespath 0.16 yields `undefined` for a lone "="). */
  export function tokenize(expression: string): unknown[];
}

/** A node of the AST `compile` returns (the fields this adapter checks). */
interface AstNode {
  type: string;
  name?: unknown;
  value?: unknown;
  children?: unknown[];
}

/** A compiled --query expression. */
export interface Query {
  readonly source: string;
  /** jmespath's AST of `source`, checked by `defect`. */
  readonly ast: unknown;
}

/** The functions of the JMESPath spec, all of which jmespath 0.16 implements. */
export const JMESPATH_FUNCTIONS: ReadonlySet<string> = new Set([
  "abs", "avg", "ceil", "contains", "ends_with", "floor", "join", "keys", "length", "map", "max", "max_by", "merge",
  "min", "min_by", "not_null", "reverse", "sort", "sort_by", "starts_with", "sum", "to_array", "to_number",
  "to_string", "type", "values",
]);

/** Compiles `expression`; throws a UsageError (exit 252) naming it and why it is invalid. */
export function parseQuery(expression: string): Query {
  const bad = (reason: string) => new UsageError(`Bad value for --query ${expression}: ${reason}`);
  if (expression.trim() === "") throw bad("the expression is empty");
  let ast: unknown;
  try {
    ast = compile(expression);
  } catch (err) {
    throw bad(syntaxError(expression, err));
  }
  const reason = defect(ast);
  if (reason) throw bad(reason);
  return { source: expression, ast };
}

/** The value `query` selects from `json` (null when nothing matches, as in JMESPath). */
export function evaluate(query: Query, json: Json): Json {
  try {
    // jmespath 0.16 exports no way to evaluate a compiled AST, so this parses
    // the source again; it is the same expression parseQuery accepted.
    return (search(json, query.source) as Json | undefined) ?? null;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new CliError(`Error evaluating --query ${query.source}: ${reason}`, ExitCode.general);
  }
}

/** jmespath's reason for refusing `expression`, made readable where it is not. */
function syntaxError(expression: string, err: unknown): string {
  if (err instanceof TypeError) {
    // The parser crashed; a lone "=" (which the lexer drops) is the known cause.
    return tokenize(expression).includes(undefined) ? "unknown operator '=' (compare with ==)" : "invalid syntax";
  }
  // Quoted identifiers and `literals` go through JSON.parse.
  if (err instanceof SyntaxError) return `invalid quoted identifier or literal (${err.message})`;
  return err instanceof Error ? err.message : String(err);
}

function isNode(v: unknown): v is AstNode {
  return typeof v === "object" && v !== null && typeof (v as AstNode).type === "string";
}

/** Why an AST jmespath accepted is not valid JMESPath after all, or undefined when it is. */
function defect(node: unknown): string | undefined {
  if (!isNode(node)) return "incomplete expression (nothing after '.', or empty '()')";
  switch (node.type) {
    case "Literal":
      return undefined; // its value is JSON, not AST
    case "Slice": // children are the [start:stop:step] numbers
      return node.children?.every((n) => n === null || Number.isInteger(n)) ? undefined : "invalid slice";
    case "Index":
      return Number.isInteger(node.value) ? undefined : "invalid index";
    case "KeyValuePair":
      return defect(node.value);
    case "Function":
      if (typeof node.name !== "string") return "only a function name can be followed by '(...)'";
      if (!JMESPATH_FUNCTIONS.has(node.name)) return `unknown function: ${node.name}()`;
  }
  for (const child of node.children ?? []) {
    const reason = defect(child);
    if (reason) return reason;
  }
  return undefined;
}
