// Rendering responses for `--output json|text|table`. JSON and text follow the
// aws CLI exactly (its json formatter and awscli/text.py); table is Cirrus's
// own compact view: one row per resource with the columns people scan for.
import Table from "cli-table3";

export const OUTPUT_FORMATS = ["json", "table", "text"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** A JSON value as produced by a generated `toJSON`. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * The aws CLI's JSON output: 4-space indent, one trailing newline, and nothing
 * at all for an empty response (e.g. RebootInstances).
 */
export function formatJson(response: JsonObject): string {
  if (Object.keys(response).length === 0) return "";
  return `${JSON.stringify(response, null, 4)}\n`;
}

/**
 * The JSON of a message: its generated `toJSON`, with numbers and booleans put
 * back where `toJSON` dropped them for being proto3 defaults. EC2 always sends
 * those (a pending instance's `"State": {"Code": 0, …}`, an image's
 * `"Public": false`), so the aws CLI prints them; empty strings and empty
 * lists stay omitted as `toJSON` leaves them. Walks the decoded message (which
 * holds every field, in field order) alongside its JSON.
 */
export function messageJson(message: unknown, json: unknown): Json {
  if (Array.isArray(message) && Array.isArray(json)) return json.map((j, i) => messageJson(message[i], j));
  if (!isRecord(message) || !isRecord(json)) return json as Json;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(message)) {
    if (k in json) out[k] = messageJson(v, json[k]);
    else if (typeof v === "number" || typeof v === "boolean") out[k] = v;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The aws CLI's text output (awscli/text.py): a dict prints its scalar values
 * as one tab-separated line, sorted by key and prefixed by its key name in
 * upper case; each nested list or dict follows on its own lines. Elements of a
 * list of dicts share one column set, so their lines align ("None" fills gaps).
 */
export function formatText(response: Json): string {
  const lines: string[] = [];
  textItem(response, lines, undefined, undefined);
  return lines.map((l) => `${l}\n`).join("");
}

function isContainer(v: Json): v is Json[] | JsonObject {
  return typeof v === "object" && v !== null;
}

/** Scalars as Python's str() prints them, which is what aws text output shows. */
function scalarText(v: Json | undefined): string {
  if (v === undefined || v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  return String(v);
}

function textItem(item: Json, lines: string[], identifier: string | undefined, scalarKeys: string[] | undefined): void {
  if (Array.isArray(item)) textList(item, lines, identifier);
  else if (isContainer(item)) textDict(item, lines, identifier, scalarKeys);
  else lines.push(scalarText(item));
}

function textList(items: Json[], lines: string[], identifier: string | undefined): void {
  if (items.length === 0) return;
  const dicts = items.filter((e): e is JsonObject => isContainer(e) && !Array.isArray(e));
  if (dicts.length > 0) {
    const keys = [...new Set(dicts.flatMap((d) => Object.keys(d).filter((k) => !isContainer(d[k]!))))].sort();
    for (const e of items) textItem(e, lines, identifier, keys);
    return;
  }
  const scalars = items.filter((e) => !isContainer(e));
  if (scalars.length > 0) {
    if (identifier === undefined) lines.push(scalars.map(scalarText).join("\t"));
    else for (const s of scalars) lines.push(`${identifier.toUpperCase()}\t${scalarText(s)}`);
  }
  for (const e of items) if (isContainer(e)) textItem(e, lines, identifier, undefined);
}

function textDict(obj: JsonObject, lines: string[], identifier: string | undefined, scalarKeys: string[] | undefined): void {
  const entries = scalarKeys ? Object.entries(obj) : Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const keys = scalarKeys ?? entries.filter(([, v]) => !isContainer(v)).map(([k]) => k);
  const scalars = keys.map((k) => scalarText(obj[k]));
  if (scalars.length > 0) lines.push([...(identifier === undefined ? [] : [identifier.toUpperCase()]), ...scalars].join("\t"));
  for (const [k, v] of entries) if (isContainer(v)) textItem(v, lines, k, undefined);
}

/** A table's content: column headers and one row of cells per resource. */
export interface Grid {
  head: string[];
  rows: string[][];
}

/** Column header → how to read that cell from a row object. */
export type Columns<Row> = Record<string, (row: Row) => string | number | boolean | undefined>;

/** Builds a grid from resources and column readers (missing cells print empty). */
export function grid<Row>(rows: readonly Row[], columns: Columns<Row>): Grid {
  const readers = Object.values(columns);
  return {
    head: Object.keys(columns),
    rows: rows.map((r) => readers.map((read) => {
      const v = read(r);
      return v === undefined ? "" : String(v);
    })),
  };
}

/** The fallback table for responses without a resource list: one Key/Value row per scalar. */
export function scalarGrid(response: JsonObject): Grid {
  const scalars = Object.entries(response).filter(([, v]) => !isContainer(v));
  if (scalars.length === 0) return { head: [], rows: [] };
  return { head: ["Key", "Value"], rows: scalars.map(([k, v]) => [k, scalarText(v)]) };
}

/**
 * The table of any JSON value (what --query selected): a list of objects gets
 * a column per scalar member, an object a Key/Value row per scalar, and
 * scalars (also inside nested lists) one "Value" row each.
 */
export function valueGrid(value: Json): Grid {
  if (isRecord(value)) return scalarGrid(value as JsonObject);
  const items = flattenDeep(value);
  const objects = items.filter((v): v is JsonObject => isRecord(v));
  if (objects.length === 0) return { head: ["Value"], rows: items.map((v) => [scalarText(v)]) };
  const keys = [...new Set(objects.flatMap((o) => Object.keys(o).filter((k) => !isContainer(o[k]!))))];
  return { head: keys, rows: objects.map((o) => keys.map((k) => (o[k] === undefined ? "" : scalarText(o[k])))) };
}

function flattenDeep(value: Json): Json[] {
  return Array.isArray(value) ? value.flatMap(flattenDeep) : [value];
}

/** Renders a grid as a boxed table (no colours, so it pipes cleanly); nothing for a grid without columns. */
export function formatTable(g: Grid): string {
  if (g.head.length === 0) return "";
  const table = new Table({ head: g.head, style: { head: [], border: [] } });
  table.push(...g.rows);
  return `${table.toString()}\n`;
}
