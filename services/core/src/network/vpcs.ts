// CreateVpc/DescribeVpcs/DeleteVpc, CreateSubnet/DescribeSubnets/DeleteSubnet,
// and each account's default VPC with one default subnet per zone.
import { Ec2Error, newId } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { PoolClient } from "pg";
import type { DomainContext } from "../context.js";
import { inTransaction } from "../../db/tx.js";
import { describePage } from "../describe.js";
import { insertTags } from "../tags.js";
import { requireIds, tagsFor, truncate } from "../validate.js";
import { contains, overlaps, parseCidr, size, toIp, type Cidr } from "./cidr.js";
import { createDefaultSecurityGroup } from "./securityGroups.js";

interface VpcRow {
  id: string;
  owner_id: string;
  cidr: string;
  is_default: boolean;
}

interface SubnetRow {
  id: string;
  vpc_id: string;
  owner_id: string;
  cidr: string;
  availability_zone: string;
  default_for_az: boolean;
}

const vpcToProto = (r: VpcRow, tags: compute.Tag[]): compute.Vpc => ({
  VpcId: r.id, CidrBlock: r.cidr, State: "available", IsDefault: r.is_default, OwnerId: r.owner_id, InstanceTenancy: "default", Tags: tags,
});

async function insertVpc(db: PoolClient, ctx: DomainContext, cidr: Cidr, isDefault: boolean, tags: compute.Tag[]): Promise<VpcRow> {
  const id = newId("vpc");
  const { rows: [vpc] } = await db.query<VpcRow>(
    "INSERT INTO vpcs (id, owner_id, cidr, is_default) VALUES ($1, $2, $3, $4) RETURNING *",
    [id, ctx.config.CIRRUS_ACCOUNT_ID, cidr.text, isDefault],
  );
  await createDefaultSecurityGroup(db, ctx, id);
  await insertTags(db, [id], tags);
  return vpc!;
}

/** EC2 reserves a subnet's first four and last addresses; the rest are assignable. */
async function insertSubnet(db: PoolClient, ctx: DomainContext, vpcId: string, cidr: Cidr, zone: string, defaultForAz: boolean, tags: compute.Tag[]): Promise<SubnetRow> {
  const id = newId("subnet");
  const { rows: [subnet] } = await db.query<SubnetRow>(
    "INSERT INTO subnets (id, vpc_id, owner_id, cidr, availability_zone, default_for_az) VALUES ($1,$2,$3,$4,$5,$6) RETURNING *",
    [id, vpcId, ctx.config.CIRRUS_ACCOUNT_ID, cidr.text, zone, defaultForAz],
  );
  await db.query(
    "INSERT INTO subnet_addresses (subnet_id, ip) SELECT $1, host(network($2::cidr) + n)::inet FROM generate_series(4, $3::bigint - 2) AS n",
    [id, cidr.text, size(cidr)],
  );
  await insertTags(db, [id], tags);
  return subnet!;
}

export async function createVpc(ctx: DomainContext, req: compute.CreateVpcRequest): Promise<compute.CreateVpcResponse> {
  if (!req.CidrBlock) throw new Ec2Error("MissingParameter", "The request must contain the parameter CidrBlock");
  const cidr = parseCidr(req.CidrBlock, "cidrBlock", 16, 28);
  const tags = tagsFor("vpc", req.TagSpecifications, ["vpc"]);
  const vpc = await inTransaction(ctx.pool, (db) => insertVpc(db, ctx, cidr, false, tags));
  ctx.log.info({ vpcId: vpc.id, cidr: cidr.text }, "vpc created");
  return { Vpc: vpcToProto(vpc, tags) };
}

export async function describeVpcs(ctx: DomainContext, req: compute.DescribeVpcsRequest): Promise<compute.DescribeVpcsResponse> {
  requireIds("vpc", req.VpcIds);
  const page = await describePage<VpcRow>(ctx, {
    table: "vpcs", ids: req.VpcIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken,
    filterColumns: { "vpc-id": "vpcs.id", "cidr-block": "vpcs.cidr", cidr: "vpcs.cidr", "is-default": "vpcs.is_default", "owner-id": "vpcs.owner_id", state: "'available'" },
    notFound: (m) => new Ec2Error("InvalidVpcID.NotFound", `The vpc ID '${m.join(", ")}' does not exist`),
  });
  return { Vpcs: page.rows.map((r) => vpcToProto(r, page.tags.get(r.id) ?? [])), NextToken: page.nextToken };
}

async function lockVpc(db: PoolClient, ctx: DomainContext, vpcId: string): Promise<VpcRow> {
  requireIds("vpc", [vpcId]);
  const { rows: [vpc] } = await db.query<VpcRow>("SELECT * FROM vpcs WHERE id = $1 AND owner_id = $2 FOR UPDATE", [vpcId, ctx.config.CIRRUS_ACCOUNT_ID]);
  if (!vpc) throw new Ec2Error("InvalidVpcID.NotFound", `The vpc ID '${vpcId}' does not exist`);
  return vpc;
}

export async function deleteVpc(ctx: DomainContext, req: compute.DeleteVpcRequest): Promise<compute.DeleteVpcResponse> {
  if (!req.VpcId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VpcId");
  await inTransaction(ctx.pool, async (db) => {
    await lockVpc(db, ctx, req.VpcId);
    const { rows: [deps] } = await db.query<{ subnets: number; groups: number }>(
      `SELECT (SELECT count(*) FROM subnets WHERE vpc_id = $1)::int AS subnets,
              (SELECT count(*) FROM security_groups WHERE vpc_id = $1 AND NOT is_default)::int AS groups`,
      [req.VpcId],
    );
    if (deps!.subnets || deps!.groups) throw new Ec2Error("DependencyViolation", `The vpc '${req.VpcId}' has dependencies and cannot be deleted.`);
    await db.query("UPDATE instances SET vpc_id = NULL WHERE vpc_id = $1", [req.VpcId]);
    await db.query("DELETE FROM instance_security_groups WHERE group_id IN (SELECT id FROM security_groups WHERE vpc_id = $1)", [req.VpcId]);
    await db.query("DELETE FROM security_groups WHERE vpc_id = $1", [req.VpcId]);
    await db.query("DELETE FROM tags WHERE resource_id = $1", [req.VpcId]);
    await db.query("DELETE FROM vpcs WHERE id = $1", [req.VpcId]);
  });
  return {};
}

export async function createSubnet(ctx: DomainContext, req: compute.CreateSubnetRequest): Promise<compute.CreateSubnetResponse> {
  if (!req.VpcId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VpcId");
  if (!req.CidrBlock) throw new Ec2Error("MissingParameter", "The request must contain the parameter CidrBlock");
  requireIds("vpc", [req.VpcId]);
  const cidr = parseCidr(req.CidrBlock, "cidrBlock", 16, 28);
  const zone = req.AvailabilityZone || ctx.config.zones[0]!;
  if (!ctx.config.zones.includes(zone)) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(zone)}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: ${ctx.config.zones.join(", ")}.`);
  }
  const tags = tagsFor("subnet", req.TagSpecifications, ["subnet"]);
  const subnet = await inTransaction(ctx.pool, async (db) => {
    // The VPC row lock serializes subnet creation per VPC, so the overlap check holds.
    const vpc = await lockVpc(db, ctx, req.VpcId);
    if (!contains(parseCidr(vpc.cidr, "vpc"), cidr)) throw new Ec2Error("InvalidSubnet.Range", `The CIDR '${cidr.text}' is invalid.`);
    const { rows: others } = await db.query<{ cidr: string }>("SELECT cidr FROM subnets WHERE vpc_id = $1", [vpc.id]);
    if (others.some((o) => overlaps(parseCidr(o.cidr, "subnet"), cidr))) throw new Ec2Error("InvalidSubnet.Conflict", `The CIDR '${cidr.text}' conflicts with another subnet`);
    return insertSubnet(db, ctx, vpc.id, cidr, zone, false, tags);
  });
  ctx.log.info({ subnetId: subnet.id, vpcId: subnet.vpc_id, cidr: cidr.text }, "subnet created");
  return { Subnet: await subnetToProto(ctx, subnet, tags) };
}

async function subnetToProto(ctx: DomainContext, r: SubnetRow, tags: compute.Tag[], free?: number): Promise<compute.Subnet> {
  const available = free ?? Number((await ctx.pool.query("SELECT count(*) AS n FROM subnet_addresses WHERE subnet_id = $1 AND instance_id IS NULL", [r.id])).rows[0].n);
  return {
    SubnetId: r.id, VpcId: r.vpc_id, CidrBlock: r.cidr, AvailabilityZone: r.availability_zone, AvailableIpAddressCount: available,
    State: "available", DefaultForAz: r.default_for_az, MapPublicIpOnLaunch: false, OwnerId: r.owner_id, Tags: tags,
  };
}

export async function describeSubnets(ctx: DomainContext, req: compute.DescribeSubnetsRequest): Promise<compute.DescribeSubnetsResponse> {
  requireIds("subnet", req.SubnetIds);
  const page = await describePage<SubnetRow & { free: string }>(ctx, {
    table: "subnets", ids: req.SubnetIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken,
    filterColumns: {
      "subnet-id": "subnets.id", "vpc-id": "subnets.vpc_id", "cidr-block": "subnets.cidr", "availability-zone": "subnets.availability_zone",
      "default-for-az": "subnets.default_for_az", "owner-id": "subnets.owner_id", state: "'available'",
    },
    notFound: (m) => new Ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${m.join(", ")}' does not exist`),
  });
  return { Subnets: await Promise.all(page.rows.map((r) => subnetToProto(ctx, r, page.tags.get(r.id) ?? []))), NextToken: page.nextToken };
}

export async function deleteSubnet(ctx: DomainContext, req: compute.DeleteSubnetRequest): Promise<compute.DeleteSubnetResponse> {
  if (!req.SubnetId) throw new Ec2Error("MissingParameter", "The request must contain the parameter SubnetId");
  requireIds("subnet", [req.SubnetId]);
  await inTransaction(ctx.pool, async (db) => {
    const { rows: [subnet] } = await db.query<SubnetRow>("SELECT * FROM subnets WHERE id = $1 AND owner_id = $2 FOR UPDATE", [req.SubnetId, ctx.config.CIRRUS_ACCOUNT_ID]);
    if (!subnet) throw new Ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${req.SubnetId}' does not exist`);
    const { rows: [inUse] } = await db.query("SELECT 1 FROM subnet_addresses WHERE subnet_id = $1 AND instance_id IS NOT NULL LIMIT 1", [req.SubnetId]);
    if (inUse) throw new Ec2Error("DependencyViolation", `The subnet '${req.SubnetId}' has dependencies and cannot be deleted.`);
    await db.query("DELETE FROM tags WHERE resource_id = $1", [req.SubnetId]);
    await db.query("DELETE FROM subnets WHERE id = $1", [req.SubnetId]);
  });
  return {};
}

/**
 * Makes sure the account has its default VPC (CIRRUS_DEFAULT_VPC_CIDR) with a
 * default /20 subnet in every configured zone, as AWS does. Idempotent and
 * safe when several API processes start at once.
 */
export async function ensureDefaultNetwork(ctx: DomainContext): Promise<void> {
  const cidr = parseCidr(ctx.config.CIRRUS_DEFAULT_VPC_CIDR, "CIRRUS_DEFAULT_VPC_CIDR", 16, 28);
  await inTransaction(ctx.pool, async (db) => {
    await db.query("SELECT pg_advisory_xact_lock(hashtext('cirrus-default-network'))");
    let { rows: [vpc] } = await db.query<VpcRow>("SELECT * FROM vpcs WHERE owner_id = $1 AND is_default", [ctx.config.CIRRUS_ACCOUNT_ID]);
    if (!vpc) vpc = await insertVpc(db, ctx, cidr, true, []);
    // /20 per zone as in AWS (the whole VPC when it is smaller than that).
    const subnetPrefix = Math.max(cidr.prefix, 20);
    for (const [i, zone] of ctx.config.zones.entries()) {
      const { rows: [existing] } = await db.query("SELECT 1 FROM subnets WHERE vpc_id = $1 AND availability_zone = $2 AND default_for_az", [vpc.id, zone]);
      if (existing) continue;
      const sub: Cidr = { base: cidr.base + i * 2 ** (32 - subnetPrefix), prefix: subnetPrefix, text: "" };
      sub.text = `${toIp(sub.base)}/${subnetPrefix}`;
      if (!contains(cidr, sub)) {
        ctx.log.warn({ zone }, "default VPC too small for a default subnet in this zone");
        continue;
      }
      await insertSubnet(db, ctx, vpc.id, sub, zone, true, []);
    }
  });
}
