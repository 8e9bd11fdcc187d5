// Turning command-line values into EC2 request messages, in one place for
// every command: each option has a kind (how its text is read) and maps to the
// request field of the same name (`--image-id` → `ImageId`, as the aws CLI
// derives its flags from the EC2 model); the assembled object is then checked
// against the message shape and converted with the generated `fromJSON`.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { parameterError, UsageError } from "./errors.js";
import { looksLikeJson, parseShorthand, parseShorthandList, ShorthandSyntaxError } from "./shorthand.js";

/** How an option's text is read. */
export type ParamKind =
  | "string" // --image-id ami-…
  | "integer" // --max-results 5
  | "flag" // --force
  | "string-list" // --instance-ids i-1 i-2   (or i-1,i-2, or a JSON array)
  | "structure" // --placement AvailabilityZone=az1   (or JSON object)
  | "structure-list" // --filters Name=a,Values=x Name=b,Values=y   (or JSON array)
  | "count" // --count 2 | 1:3 → MinCount/MaxCount
  | "blob"; // --user-data text | file://path | fileb://path → base64

/** One command-line option and how it becomes part of the request. */
export interface ParamSpec {
  /** The flag without dashes, e.g. "image-id". */
  readonly flag: string;
  /** The request member it sets (default: the flag in PascalCase, `image-id` → `ImageId`). */
  readonly member?: string;
  readonly kind: ParamKind;
  readonly description: string;
  readonly required?: boolean;
  /** Value used when the option is absent (as typed on the command line). */
  readonly defaultValue?: string;
  /** The placeholder in help, e.g. "seconds"; "value" if unset. */
  readonly valueName?: string;
}

/** `image-id` → `ImageId`: the EC2 member an option sets. */
export function fieldName(flag: string): string {
  return flag
    .split("-")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

/** How commander should declare the option (variadic for lists). */
export function commanderFlags(p: ParamSpec): string {
  const name = p.valueName ?? "value";
  if (p.kind === "flag") return `--${p.flag}`;
  if (p.kind === "string-list" || p.kind === "structure-list") return `--${p.flag} <${name}...>`;
  return `--${p.flag} <${name}>`;
}

/**
 * Reads the request fields one option contributes from its raw commander
 * value (a string, a string[] for variadic options, or true for flags).
 */
export function paramFields(p: ParamSpec, raw: string | string[] | boolean): Record<string, unknown> {
  const flag = `--${p.flag}`;
  const member = p.member ?? fieldName(p.flag);
  const one = (): string => (Array.isArray(raw) ? raw.join(" ") : String(raw));
  const many = (): string[] => (Array.isArray(raw) ? raw : [String(raw)]);
  switch (p.kind) {
    case "count":
      return parseCount(one());
    case "flag":
      return { [member]: raw === true };
    case "integer":
      return { [member]: parseInteger(flag, loadText(flag, one())) };
    case "blob":
      return { [member]: loadBytes(flag, one()).toString("base64") };
    case "string":
      return { [member]: loadText(flag, one()) };
    case "structure":
      return { [member]: parseStructure(flag, loadText(flag, one())) };
    case "string-list":
      return { [member]: many().flatMap((v) => parseStringList(flag, loadText(flag, v))) };
    case "structure-list":
      return { [member]: many().flatMap((v) => parseStructureList(flag, loadText(flag, v))) };
  }
}

/**
 * `--count`: "N" launches exactly N (MinCount = MaxCount = N); "MIN:MAX"
 * launches at least MIN and up to MAX — the aws CLI's run-instances rule.
 */
export function parseCount(raw: string): { MinCount: number; MaxCount: number } {
  const m = /^\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(raw);
  if (!m) throw parameterError("--count", `expected N or MIN:MAX (positive integers), received '${raw}'`);
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  if (min < 1) throw parameterError("--count", `the count must be at least 1, received '${raw}'`);
  if (max < min) throw parameterError("--count", `MIN must not exceed MAX, received '${raw}'`);
  return { MinCount: min, MaxCount: max };
}

function parseInteger(flag: string, raw: string): number {
  if (!/^\s*-?\d+\s*$/.test(raw)) throw parameterError(flag, `expected an integer, received '${raw}'`);
  return Number(raw);
}

// file:// and fileb:// work on every option, as in the aws CLI ("paramfile").
const FILE = "file://";
const FILEB = "fileb://";

function readParamFile(flag: string, path: string): Buffer {
  try {
    // `fileb://~/.ssh/id.pub`: the shell does not expand a ~ inside a word, so do it as the aws CLI does.
    return readFileSync(path === "~" || path.startsWith("~/") ? homedir() + path.slice(1) : path);
  } catch (err) {
    throw parameterError(flag, `Unable to load paramfile ${path}: ${(err as Error).message}`);
  }
}

/** The option's text, read from a file for `file://path`. */
export function loadText(flag: string, raw: string): string {
  if (raw.startsWith(FILE)) return readParamFile(flag, raw.slice(FILE.length)).toString("utf8");
  if (raw.startsWith(FILEB)) return readParamFile(flag, raw.slice(FILEB.length)).toString("utf8");
  return raw;
}

/** The option's bytes: the text itself (UTF-8) or a file's contents. */
export function loadBytes(flag: string, raw: string): Buffer {
  if (raw.startsWith(FILE)) return readParamFile(flag, raw.slice(FILE.length));
  if (raw.startsWith(FILEB)) return readParamFile(flag, raw.slice(FILEB.length));
  return Buffer.from(raw, "utf8");
}

function parseJson(flag: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw parameterError(flag, `Invalid JSON: ${(err as Error).message}\nJSON received: ${raw}`);
  }
}

/** Runs a shorthand parser, reporting syntax errors against the flag. */
function shorthand<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ShorthandSyntaxError) throw parameterError(flag, err.message);
    throw err;
  }
}

/** A structure option: shorthand `K=V,…` or a JSON object. */
export function parseStructure(flag: string, raw: string): Record<string, unknown> {
  if (!looksLikeJson(raw)) return shorthand(flag, () => parseShorthand(raw));
  const v = parseJson(flag, raw);
  if (!isPlainObject(v)) throw parameterError(flag, `expected a JSON object, received: ${raw}`);
  return v;
}

/** One word of a structure-list option: a shorthand structure, a JSON object, or a JSON array of them. */
export function parseStructureList(flag: string, raw: string): Record<string, unknown>[] {
  if (!looksLikeJson(raw)) return [shorthand(flag, () => parseShorthand(raw))];
  const v = parseJson(flag, raw);
  const items = Array.isArray(v) ? v : [v];
  if (!items.every(isPlainObject)) throw parameterError(flag, `expected a JSON object or a list of objects, received: ${raw}`);
  return items;
}

/** One word of a string-list option: `a,b` or a JSON array of strings. */
export function parseStringList(flag: string, raw: string): string[] {
  if (!raw.trimStart().startsWith("[")) return shorthand(flag, () => parseShorthandList(raw));
  const v = parseJson(flag, raw);
  if (!Array.isArray(v) || !v.every((e) => typeof e === "string"))
    throw parameterError(flag, `expected a JSON list of strings, received: ${raw}`);
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The part of a generated message type's functions the builder needs. */
export interface JsonMessageFns<T> {
  fromJSON(object: unknown): T;
}

/**
 * Converts a plain object (from options, shorthand or JSON) into a request
 * message, failing like the aws CLI's "Parameter validation failed" on unknown
 * members and on values of the wrong type.
 *
 * The generated `fromJSON` silently drops unknown members and coerces with
 * `Boolean("false") === true`, so the input is first conformed to the shape
 * `fromJSON` produces: each parse reveals one more level of the message (its
 * members, which are lists, numbers, booleans), and the input is adjusted
 * (a single value becomes a one-element list, "true" becomes true, "8" becomes
 * 8) until it parses without change.
 */
export function toMessage<T>(fns: JsonMessageFns<T>, input: Record<string, unknown>): T {
  let current: unknown = input;
  // Each pass fixes at least one more level of nesting; messages are shallow.
  for (let pass = 0; pass < 16; pass++) {
    const parsed = fns.fromJSON(current);
    const { value, changed } = conform(current, parsed, "");
    if (!changed) return parsed;
    current = value;
  }
  throw new Error("request conversion did not settle");
}

interface Conformed {
  value: unknown;
  changed: boolean;
}

function validationError(detail: string): UsageError {
  return new UsageError(`Parameter validation failed:\n${detail}`);
}

function describeValue(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

function conform(input: unknown, shape: unknown, path: string): Conformed {
  const here = path || "input";
  const invalidType = (valid: string) =>
    validationError(`Invalid type for parameter ${here}, value: ${describeValue(input)}, valid types: ${valid}`);
  if (input === undefined || input === null) return { value: input, changed: false };

  if (shape instanceof Uint8Array) {
    // A bytes member (ImportKeyPair's PublicKeyMaterial): base64 text in JSON, as "blob" options produce.
    if (typeof input !== "string") throw invalidType("blob");
    return { value: input, changed: false };
  }
  if (Array.isArray(shape)) {
    // Shorthand `Values=running` yields a string where the shape wants a list.
    if (!Array.isArray(input)) return { value: [input], changed: true };
    let changed = false;
    const value = input.map((el, i) => {
      const r = conform(el, shape[i], `${path}[${i}]`);
      changed ||= r.changed;
      return r.value;
    });
    return { value, changed };
  }
  if (isPlainObject(shape)) {
    if (!isPlainObject(input)) throw invalidType("structure");
    const known = Object.keys(shape);
    let changed = false;
    const value: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(input)) {
      if (!known.includes(k))
        throw validationError(`Unknown parameter in ${here}: "${k}", must be one of: ${known.join(", ")}`);
      const r = conform(v, shape[k], path ? `${path}.${k}` : k);
      changed ||= r.changed;
      value[k] = r.value;
    }
    return { value, changed };
  }
  if (typeof shape === "number") {
    if (typeof input === "number" && Number.isInteger(input)) return { value: input, changed: false };
    if (typeof input === "string" && /^\s*-?\d+\s*$/.test(input)) return { value: Number(input), changed: true };
    throw invalidType("integer");
  }
  if (typeof shape === "boolean") {
    if (typeof input === "boolean") return { value: input, changed: false };
    const lower = typeof input === "string" ? input.trim().toLowerCase() : "";
    if (lower === "true" || lower === "false") return { value: lower === "true", changed: true };
    throw invalidType("boolean");
  }
  if (typeof shape === "string") {
    // Numbers and booleans from JSON read as their text; structures do not.
    if (typeof input === "object") throw invalidType("string");
    return { value: input, changed: false };
  }
  return { value: input, changed: false };
}
