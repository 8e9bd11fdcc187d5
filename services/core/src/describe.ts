// Describe* over any resource kind: optional ids (every one must exist, unless
// filters narrow the answer, as in EC2), EC2 filters, the caller's account,
// MaxResults/NextToken keyset paging on the kind's order column, and the
// rows mapped to the API shape by the kind itself.
import type { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import type { Queryable } from "./db/tx.js";
import { Ec2Error } from "./errors.js";
import { compileFilters } from "./filters.js";
import type { ResourceKind } from "./resource.js";
import { decodeToken, encodeToken, pageSize, requireIds } from "./validate.js";

export interface DescribeQuery {
  ids: readonly string[];
  filters: readonly compute.Filter[];
  maxResults?: number;
  nextToken?: string;
  /** Every match in one answer, for Describe actions that EC2 does not page (DescribeAddresses). */
  unpaged?: boolean;
  /** Extra SQL conditions over the kind's table, with their values already in `params`. */
  where?: string[];
  params?: unknown[];
}

/** SQL for the caller's own rows of `kind` (its id into `params`). */
function own(ctx: RequestContext, kind: ResourceKind<any, unknown>, params: unknown[]): string {
  return `${kind.table}.owner_id = $${params.push(ctx.principal.accountId)}`;
}

/** SQL for the rows of `kind` the caller may read: the kind's `readable`, by default its own. */
function readableRows(ctx: RequestContext, kind: ResourceKind<any, unknown>, params: unknown[]): string {
  return kind.readable ? kind.readable(ctx, params) : own(ctx, kind, params);
}

/** One page of the rows of `kind` the caller may read (`readable`) in key order, and the NextToken of the next page ("" on the last). */
export async function describeRows<Row extends { id: string }>(ctx: RequestContext, kind: ResourceKind<Row, unknown>, q: DescribeQuery): Promise<{ rows: Row[]; nextToken: string }> {
  requireIds(kind, q.ids);
  const t = kind.table;
  const key = kind.orderBy ?? "id";
  const limit = Math.max(pageSize(q.maxResults, q.ids.length > 0), q.ids.length);
  const after = decodeToken(q.nextToken ?? "");
  if (after && key === "row_seq" && !/^\d+$/.test(after[0] ?? "")) throw new Ec2Error("InvalidNextToken", "The specified token is not valid.");
  const params: unknown[] = [...(q.params ?? [])];
  const where = [readableRows(ctx, kind, params), ...(q.where ?? []), ...compileFilters(q.filters, kind.filters, `${t}.id`, params, ctx.principal.accountId)];
  if (kind.visible) where.push(kind.visible(ctx, params));
  if (q.ids.length) where.push(`${t}.id = ANY($${params.push(q.ids)})`);
  if (after) where.push(`${t}.${key} > $${params.push(after[0])}`);
  const { rows } = await ctx.db.query<Row>(`SELECT ${t}.* FROM ${t} WHERE ${where.join(" AND ")} ORDER BY ${t}.${key}${q.unpaged ? "" : ` LIMIT ${limit + 1}`}`, params);
  if (q.ids.length && q.filters.length === 0) {
    const found = new Set(rows.map((r) => r.id));
    const missing = [...new Set(q.ids.filter((id) => !found.has(id)))];
    if (missing.length) throw kind.notFound(missing);
  }
  const page = q.unpaged ? rows : rows.slice(0, limit);
  const last = page[page.length - 1] as Record<string, unknown> | undefined;
  return { rows: page, nextToken: rows.length > page.length ? encodeToken([String(last![key])]) : "" };
}

/** describeRows mapped to the API shape. */
export async function describeKind<Row extends { id: string }, Api>(ctx: RequestContext, kind: ResourceKind<Row, Api>, q: DescribeQuery): Promise<{ items: Api[]; nextToken: string }> {
  const page = await describeRows(ctx, kind, q);
  return { items: await kind.toApi(ctx, page.rows), nextToken: page.nextToken };
}

/** The visible rows of `kind` with these ids that `who` (SQL over the table, values into params) admits, in order, optionally locked. */
async function findRows<Row extends { id: string }>(ctx: RequestContext, db: Queryable, kind: ResourceKind<Row, unknown>, ids: readonly string[],
  who: (params: unknown[]) => string, lock: "" | " FOR UPDATE" | " FOR SHARE"): Promise<Row[]> {
  requireIds(kind, ids);
  const params: unknown[] = [ids];
  const admitted = who(params);
  const visible = kind.visible ? ` AND ${kind.visible(ctx, params)}` : "";
  const { rows } = await db.query<Row>(`SELECT * FROM ${kind.table} WHERE id = ANY($1) AND ${admitted}${visible} ORDER BY ${kind.orderBy ?? "id"}${lock}`, params);
  const found = new Set(rows.map((r) => r.id));
  const missing = [...new Set(ids.filter((id) => !found.has(id)))];
  if (missing.length) throw kind.notFound(missing);
  return rows;
}

/**
 * The caller's visible rows of `kind` with these ids, locked FOR UPDATE when
 * `db` is a transaction's client; the kind's NotFound names any that are missing.
 */
export function findOwned<Row extends { id: string }>(ctx: RequestContext, db: Queryable, kind: ResourceKind<Row, unknown>, ids: readonly string[], opts: { lock?: boolean } = {}): Promise<Row[]> {
  return findRows(ctx, db, kind, ids, (params) => own(ctx, kind, params), opts.lock ? " FOR UPDATE" : "");
}

/**
 * The visible rows of `kind` with these ids the caller may read (its own,
 * or shared with it: the kind's `readable`), share-locked when `db` is a
 * transaction's client (so their owner cannot delete them until it
 * commits); the kind's NotFound names any that are missing.
 */
export function findReadable<Row extends { id: string }>(ctx: RequestContext, db: Queryable, kind: ResourceKind<Row, unknown>, ids: readonly string[], opts: { lock?: boolean } = {}): Promise<Row[]> {
  return findRows(ctx, db, kind, ids, (params) => readableRows(ctx, kind, params), opts.lock ? " FOR SHARE" : "");
}
