// DescribeInstances: ids, filters and keyset pagination over row_seq.
import { Ec2Error } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "../context.js";
import { describeRows } from "../describe.js";
import { requireIds } from "../validate.js";
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

/** InvalidInstanceID.NotFound naming the missing ids, in EC2's singular or plural wording. */
export function instancesNotFound(missing: readonly string[]): Ec2Error {
  return missing.length === 1
    ? new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing[0]}' does not exist`)
    : new Ec2Error("InvalidInstanceID.NotFound", `The instance IDs '${missing.join(", ")}' do not exist`);
}

export function requireAllFound(ids: readonly string[], rows: readonly { id: string }[]): void {
  const found = new Set(rows.map((r) => r.id));
  const missing = [...new Set(ids.filter((id) => !found.has(id)))];
  if (missing.length) throw instancesNotFound(missing);
}

export async function describeInstances(ctx: DomainContext, req: compute.DescribeInstancesRequest): Promise<compute.DescribeInstancesResponse> {
  requireIds("i", req.InstanceIds);
  const params: unknown[] = [];
  const page = await describeRows<InstanceRow>(ctx, {
    table: "instances", ids: req.InstanceIds, filters: req.Filters, filterColumns: instanceFilterColumns,
    maxResults: req.MaxResults, nextToken: req.NextToken, orderBy: "row_seq", where: [visibleSql(ctx, params)], params,
    notFound: instancesNotFound,
  });
  return { Reservations: toReservations(page.rows, await loadExtras(ctx.pool, page.rows.map((r) => r.id))), NextToken: page.nextToken };
}
