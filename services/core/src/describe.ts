// The shared shape of a Describe* call over one table: optional id list
// (every id must exist), EC2 filters, MaxResults/NextToken keyset paging on
// the id, and the resources' tags.
import { Ec2Error } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "./context.js";
import { compileFilters, type FilterColumns } from "./filters.js";
import { loadTags } from "./tags.js";
import { decodeToken, encodeToken, pageSize } from "./validate.js";

export interface DescribeQuery {
  table: string;
  ids: readonly string[];
  filters: readonly compute.Filter[];
  filterColumns: FilterColumns;
  maxResults?: number;
  nextToken?: string;
  /** Extra SQL conditions, with their values already in `params`. */
  where?: string[];
  params?: unknown[];
  /** The error for ids that do not exist. */
  notFound(missing: string[]): Ec2Error;
  /** The keyset column pages are ordered by: the id (default) or a numeric column such as row_seq. */
  orderBy?: string;
}

/** One page of rows in key order, and the NextToken of the next page. */
export async function describeRows<Row extends { id: string }>(ctx: DomainContext, q: DescribeQuery): Promise<{ rows: Row[]; nextToken: string }> {
  const key = q.orderBy ?? "id";
  const limit = Math.max(pageSize(q.maxResults, q.ids.length > 0), q.ids.length);
  const after = decodeToken(q.nextToken ?? "");
  if (after && key !== "id" && !/^\d+$/.test(after[0] ?? "")) throw new Ec2Error("InvalidNextToken", "The specified token is not valid.");
  const params: unknown[] = [...(q.params ?? [])];
  const where = [`${q.table}.owner_id = $${params.push(ctx.config.CIRRUS_ACCOUNT_ID)}`, ...(q.where ?? []), ...compileFilters(q.filters, q.filterColumns, `${q.table}.id`, params)];
  if (q.ids.length) where.push(`${q.table}.id = ANY($${params.push(q.ids)})`);
  if (after) where.push(`${q.table}.${key} > $${params.push(after[0])}`);
  const { rows } = await ctx.pool.query<Row>(`SELECT * FROM ${q.table} WHERE ${where.join(" AND ")} ORDER BY ${key} LIMIT ${limit + 1}`, params);
  if (q.ids.length && q.filters.length === 0) {
    const found = new Set(rows.map((r) => r.id));
    const missing = [...new Set(q.ids.filter((id) => !found.has(id)))];
    if (missing.length) throw q.notFound(missing);
  }
  const page = rows.slice(0, limit);
  const last = page[page.length - 1] as Record<string, unknown> | undefined;
  return { rows: page, nextToken: rows.length > limit ? encodeToken([String(last![key])]) : "" };
}

/** describeRows plus the page's tags. */
export async function describePage<Row extends { id: string }>(ctx: DomainContext, q: DescribeQuery): Promise<{ rows: Row[]; tags: Map<string, compute.Tag[]>; nextToken: string }> {
  const page = await describeRows<Row>(ctx, q);
  return { ...page, tags: await loadTags(ctx.pool, page.rows.map((r) => r.id)) };
}
