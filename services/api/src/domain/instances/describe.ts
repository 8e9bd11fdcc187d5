// DescribeInstances: ids, filters and keyset pagination over row_seq.
import { Ec2Error } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "../context.js";
import { compileFilters } from "../filters.js";
import { decodeToken, encodeToken, pageSize, requireIds } from "../validate.js";
import { loadExtras, STATE_CODES, toReservations, type InstanceRow } from "./model.js";

const stateCodeSql = `CASE state ${Object.entries(STATE_CODES).map(([n, c]) => `WHEN '${n}' THEN ${c}`).join(" ")} END`;

const instanceFilterColumns = {
  "instance-id": "id",
  "instance-state-name": "state",
  "instance-state-code": stateCodeSql,
  "instance-type": "instance_type",
  "image-id": "image_id",
  "availability-zone": "availability_zone",
  "reservation-id": "reservation_id",
  "client-token": "client_token",
  "launch-index": "launch_index",
  "owner-id": "owner_id",
  "vpc-id": "vpc_id",
  "subnet-id": "subnet_id",
  "private-ip-address": "host(private_ip)",
  "key-name": "key_name",
};

/** Terminated instances stay visible for a while, as in EC2. */
function visibleSql(ctx: DomainContext, params: unknown[]): string {
  return `(state <> 'terminated' OR terminated_at > now() - $${params.push(ctx.config.CIRRUS_TERMINATED_VISIBLE_MS)} * interval '1 millisecond')`;
}

/** Loads visible instances by id; InvalidInstanceID.NotFound names any that are missing. */
export async function loadInstances(ctx: DomainContext, ids: readonly string[]): Promise<InstanceRow[]> {
  requireIds("i", ids);
  const params: unknown[] = [ids, ctx.config.CIRRUS_ACCOUNT_ID];
  const { rows } = await ctx.pool.query<InstanceRow>(
    `SELECT * FROM instances WHERE id = ANY($1) AND owner_id = $2 AND ${visibleSql(ctx, params)} ORDER BY row_seq`,
    params,
  );
  requireAllFound(ids, rows);
  return rows;
}

export function requireAllFound(ids: readonly string[], rows: readonly { id: string }[]): void {
  const found = new Set(rows.map((r) => r.id));
  const missing = [...new Set(ids.filter((id) => !found.has(id)))];
  if (missing.length === 1) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing[0]}' does not exist`);
  if (missing.length > 1) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance IDs '${missing.join(", ")}' do not exist`);
}

export async function describeInstances(ctx: DomainContext, req: compute.DescribeInstancesRequest): Promise<compute.DescribeInstancesResponse> {
  requireIds("i", req.InstanceIds);
  // An explicit id list is answered in one page, however long.
  const limit = Math.max(pageSize(req.MaxResults, req.InstanceIds.length > 0), req.InstanceIds.length);
  const after = decodeToken(req.NextToken);
  const params: unknown[] = [ctx.config.CIRRUS_ACCOUNT_ID];
  const where = ["owner_id = $1", visibleSql(ctx, params), ...compileFilters(req.Filters, instanceFilterColumns, "instances.id", params)];
  if (req.InstanceIds.length) where.push(`id = ANY($${params.push(req.InstanceIds)})`);
  if (after) {
    if (!/^\d+$/.test(after[0] ?? "")) throw new Ec2Error("InvalidNextToken", "The specified token is not valid.");
    where.push(`row_seq > $${params.push(after[0])}`);
  }
  const { rows } = await ctx.pool.query<InstanceRow>(`SELECT * FROM instances WHERE ${where.join(" AND ")} ORDER BY row_seq LIMIT ${limit + 1}`, params);
  if (req.InstanceIds.length && req.Filters.length === 0) requireAllFound(req.InstanceIds, rows);
  const page = rows.slice(0, limit);
  return {
    Reservations: toReservations(page, await loadExtras(ctx.pool, page.map((r) => r.id))),
    NextToken: rows.length > limit ? encodeToken([page[page.length - 1]!.row_seq]) : "",
  };
}
