// Networking for RunInstances, inside its transaction: which subnet the
// instances go to, and claiming their private addresses.
import { Ec2Error } from "@cirrus/common";
import type { PoolClient } from "pg";
import type { DomainContext } from "../context.js";

export interface LaunchSubnet {
  id: string;
  vpc_id: string;
  availability_zone: string;
  /** The VPC's default security group, for instances launched without groups. */
  default_group_id: string;
}

const SUBNET_SQL = `SELECT s.id, s.vpc_id, s.availability_zone, g.id AS default_group_id
  FROM subnets s JOIN security_groups g ON g.vpc_id = s.vpc_id AND g.is_default`;

/**
 * The subnet given, else the default subnet of the zone asked for, else of
 * the zone `pickZone` chooses. Errors: InvalidSubnetID.NotFound, or
 * InvalidParameterCombination when the subnet is in another zone than asked.
 */
export async function resolveSubnet(db: PoolClient, ctx: DomainContext, subnetId: string, zone: string | undefined, pickZone: () => string): Promise<LaunchSubnet> {
  if (subnetId) {
    const { rows: [s] } = await db.query<LaunchSubnet>(`${SUBNET_SQL} WHERE s.id = $1 AND s.owner_id = $2`, [subnetId, ctx.config.CIRRUS_ACCOUNT_ID]);
    if (!s) throw new Ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${subnetId}' does not exist`);
    if (zone && zone !== s.availability_zone) {
      throw new Ec2Error("InvalidParameterCombination", `The subnet '${subnetId}' is in ${s.availability_zone}, not in the requested ${zone}`);
    }
    return s;
  }
  const az = zone ?? pickZone();
  const { rows: [s] } = await db.query<LaunchSubnet>(
    `${SUBNET_SQL} JOIN vpcs v ON v.id = s.vpc_id AND v.is_default WHERE s.default_for_az AND s.availability_zone = $1 AND s.owner_id = $2`,
    [az, ctx.config.CIRRUS_ACCOUNT_ID],
  );
  if (!s) throw new Ec2Error("InvalidSubnetID.NotFound", `There is no default subnet in ${az}: give a SubnetId`);
  return s;
}

/**
 * Claims up to ids.length free addresses of the subnet, the i-th for ids[i].
 * SKIP LOCKED lets concurrent launches claim different addresses without
 * waiting; the primary key makes a double assignment impossible. Returns the
 * claims in id order (possibly fewer than asked).
 */
export async function claimAddresses(db: PoolClient, subnetId: string, ids: readonly string[]): Promise<{ instanceId: string; ip: string }[]> {
  const { rows } = await db.query<{ instance_id: string; ip: string }>(
    `WITH free AS (
       SELECT ip FROM subnet_addresses WHERE subnet_id = $1 AND instance_id IS NULL ORDER BY ip LIMIT $2 FOR UPDATE SKIP LOCKED
     ), numbered AS (SELECT ip, row_number() OVER (ORDER BY ip) AS n FROM free)
     UPDATE subnet_addresses a SET instance_id = ($3::text[])[numbered.n]
       FROM numbered WHERE a.subnet_id = $1 AND a.ip = numbered.ip
     RETURNING a.instance_id, host(a.ip) AS ip`,
    [subnetId, ids.length, ids],
  );
  const order = new Map(ids.map((id, i) => [id, i]));
  return rows.map((r) => ({ instanceId: r.instance_id, ip: r.ip })).sort((a, b) => order.get(a.instanceId)! - order.get(b.instanceId)!);
}
