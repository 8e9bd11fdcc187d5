// Which subnet a RunInstances goes to, inside its transaction.
import type { PoolClient } from "pg";
import type { RequestContext } from "../context.js";
import { Ec2Error } from "../errors.js";

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
 * The caller's subnet given, else their default subnet of the zone asked
 * for, else of the zone `pickZone` chooses. Errors: InvalidSubnetID.NotFound,
 * or InvalidParameterCombination when the subnet is in another zone than asked.
 */
export async function resolveSubnet(db: PoolClient, ctx: RequestContext, subnetId: string, zone: string | undefined, pickZone: () => string): Promise<LaunchSubnet> {
  if (subnetId) {
    const { rows: [s] } = await db.query<LaunchSubnet>(`${SUBNET_SQL} WHERE s.id = $1 AND s.owner_id = $2`, [subnetId, ctx.principal.accountId]);
    if (!s) throw new Ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${subnetId}' does not exist`);
    if (zone && zone !== s.availability_zone) {
      throw new Ec2Error("InvalidParameterCombination", `The subnet '${subnetId}' is in ${s.availability_zone}, not in the requested ${zone}`);
    }
    return s;
  }
  const az = zone ?? pickZone();
  const { rows: [s] } = await db.query<LaunchSubnet>(
    `${SUBNET_SQL} JOIN vpcs v ON v.id = s.vpc_id AND v.is_default WHERE s.default_for_az AND s.availability_zone = $1 AND s.owner_id = $2`,
    [az, ctx.principal.accountId],
  );
  if (!s) throw new Ec2Error("InvalidSubnetID.NotFound", `There is no default subnet in ${az}: give a SubnetId`);
  return s;
}
