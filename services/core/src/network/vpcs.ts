// The VPC and subnet kinds: CreateVpc/DescribeVpcs/DeleteVpc/
// DescribeVpcAttribute, CreateSubnet/DescribeSubnets/DeleteSubnet, and each
// account's default VPC with one default subnet per zone.
import { cidrText, containsCidr, newId, nthAddress, overlaps, parseExactCidr, size, type Cidr } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { PoolClient } from "pg";
import type { Core, RequestContext } from "../context.js";
import { analyzeAfterBulkChange } from "../db/statistics.js";
import { inTransaction } from "../db/tx.js";
import { describeKind, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { defineOperation } from "../operation.js";
import { defineKind } from "../resource.js";
import { deleteTagsOf, insertTags, loadTags } from "../tags.js";
import { requireAttribute, requireIds, tagsFor, truncate } from "../validate.js";
import { requireCidr } from "./cidr.js";
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

/** Subnets and VPCs are at most /28, as in EC2. */
const MAX_PREFIX = 28;

const vpcToProto = (r: VpcRow, tags: compute.Tag[]): compute.Vpc => ({
  VpcId: r.id, CidrBlock: r.cidr, State: "available", IsDefault: r.is_default, OwnerId: r.owner_id, InstanceTenancy: "default", Tags: tags,
});

export const vpcKind = defineKind<VpcRow, compute.Vpc>({
  name: "vpc",
  resourceType: "vpc",
  idPrefix: "vpc",
  malformed: "InvalidVpcID.Malformed",
  table: "vpcs",
  notFound: (m) => new Ec2Error("InvalidVpcID.NotFound", `The vpc ID '${m.join(", ")}' does not exist`),
  filters: { "vpc-id": "vpcs.id", "cidr-block": "vpcs.cidr", cidr: "vpcs.cidr", "is-default": "vpcs.is_default", "owner-id": "vpcs.owner_id", state: "'available'" },
  toApi: async (ctx, rows) => {
    const tags = await loadTags(ctx.db, rows.map((r) => r.id));
    return rows.map((r) => vpcToProto(r, tags.get(r.id) ?? []));
  },
});

/** Free addresses of each subnet. */
async function freeAddresses(db: RequestContext["db"] | PoolClient, subnetIds: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await db.query<{ subnet_id: string; n: number }>(
    "SELECT subnet_id, count(*)::int AS n FROM subnet_addresses WHERE subnet_id = ANY($1) AND instance_id IS NULL GROUP BY subnet_id",
    [subnetIds],
  );
  return new Map(rows.map((r) => [r.subnet_id, r.n]));
}

const subnetToProto = (r: SubnetRow, tags: compute.Tag[], free: number): compute.Subnet => ({
  SubnetId: r.id, VpcId: r.vpc_id, CidrBlock: r.cidr, AvailabilityZone: r.availability_zone, AvailableIpAddressCount: free,
  State: "available", DefaultForAz: r.default_for_az, MapPublicIpOnLaunch: false, OwnerId: r.owner_id, Tags: tags,
});

export const subnetKind = defineKind<SubnetRow, compute.Subnet>({
  name: "subnet",
  resourceType: "subnet",
  idPrefix: "subnet",
  malformed: "InvalidSubnetID.Malformed",
  table: "subnets",
  notFound: (m) => new Ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${m.join(", ")}' does not exist`),
  filters: {
    "subnet-id": "subnets.id", "vpc-id": "subnets.vpc_id", "cidr-block": "subnets.cidr", "availability-zone": "subnets.availability_zone",
    "default-for-az": "subnets.default_for_az", "owner-id": "subnets.owner_id", state: "'available'",
  },
  toApi: async (ctx, rows) => {
    const ids = rows.map((r) => r.id);
    const [tags, free] = await Promise.all([loadTags(ctx.db, ids), freeAddresses(ctx.db, ids)]);
    return rows.map((r) => subnetToProto(r, tags.get(r.id) ?? [], free.get(r.id) ?? 0));
  },
});

async function insertVpc(db: PoolClient, core: Pick<Core, "config">, ownerId: string, cidr: Cidr, isDefault: boolean, tags: compute.Tag[]): Promise<VpcRow> {
  const id = newId("vpc");
  const { rows: [vpc] } = await db.query<VpcRow>(
    "INSERT INTO vpcs (id, owner_id, cidr, is_default) VALUES ($1, $2, $3, $4) RETURNING *",
    [id, ownerId, cidrText(cidr), isDefault],
  );
  await createDefaultSecurityGroup(db, core, ownerId, id);
  await insertTags(db, ownerId, vpcKind.resourceType, [id], tags);
  return vpc!;
}

/** EC2 reserves a subnet's first four and last addresses; the rest are assignable. */
async function insertSubnet(db: PoolClient, ownerId: string, vpcId: string, cidr: Cidr, zone: string, defaultForAz: boolean, tags: compute.Tag[]): Promise<SubnetRow> {
  const id = newId("subnet");
  const { rows: [subnet] } = await db.query<SubnetRow>(
    "INSERT INTO subnets (id, vpc_id, owner_id, cidr, availability_zone, default_for_az) VALUES ($1,$2,$3,$4,$5,$6) RETURNING *",
    [id, vpcId, ownerId, cidrText(cidr), zone, defaultForAz],
  );
  await db.query(
    "INSERT INTO subnet_addresses (subnet_id, ip) SELECT $1, host(network($2::cidr) + n)::inet FROM generate_series(4, $3::bigint - 2) AS n",
    [id, cidrText(cidr), size(cidr)],
  );
  await insertTags(db, ownerId, subnetKind.resourceType, [id], tags);
  return subnet!;
}

/**
 * DescribeVpcAttribute's attributes, each false in every VPC: the hosts'
 * dnsmasq serves DHCP only, with DNS off and no DNS server offered
 * (agents/host-agent/src/network/dhcp.ts), so a VPC has neither DNS
 * resolution nor DNS hostnames, and Cirrus publishes no address usage
 * metrics.
 */
const VPC_ATTRIBUTES = new Map<string, "EnableDnsSupport" | "EnableDnsHostnames" | "EnableNetworkAddressUsageMetrics">([
  ["enableDnsSupport", "EnableDnsSupport"],
  ["enableDnsHostnames", "EnableDnsHostnames"],
  ["enableNetworkAddressUsageMetrics", "EnableNetworkAddressUsageMetrics"],
]);

async function lockVpc(db: PoolClient, ctx: RequestContext, vpcId: string): Promise<VpcRow> {
  const [vpc] = await findOwned(ctx, db, vpcKind, [vpcId], { lock: true });
  return vpc!;
}

export const vpcOperations = [
  defineOperation({
    name: "CreateVpc",
    summary: "Create a VPC",
    request: compute.CreateVpcRequest,
    response: compute.CreateVpcResponse,
    mutates: true,
    kinds: ["vpc", "security-group"],
    handler: async (ctx: RequestContext, req: compute.CreateVpcRequest): Promise<compute.CreateVpcResponse> => {
      if (!req.CidrBlock) throw new Ec2Error("MissingParameter", "The request must contain the parameter CidrBlock");
      const cidr = requireCidr(req.CidrBlock, "cidrBlock", ctx.config.CIRRUS_VPC_MIN_PREFIX, MAX_PREFIX);
      const tags = tagsFor("vpc", req.TagSpecifications, ["vpc"]);
      const vpc = await inTransaction(ctx.db, (db) => insertVpc(db, ctx, ctx.principal.accountId, cidr, false, tags));
      ctx.log.info({ vpcId: vpc.id, cidr: cidrText(cidr) }, "vpc created");
      return { Vpc: vpcToProto(vpc, tags) };
    },
  }),
  defineOperation({
    name: "DescribeVpcs",
    summary: "Describe VPCs (all pages unless --max-results or --next-token is given)",
    request: compute.DescribeVpcsRequest,
    response: compute.DescribeVpcsResponse,
    mutates: false,
    kinds: ["vpc"],
    handler: async (ctx: RequestContext, req: compute.DescribeVpcsRequest): Promise<compute.DescribeVpcsResponse> => {
      const page = await describeKind(ctx, vpcKind, { ids: req.VpcIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken });
      return { Vpcs: page.items, NextToken: page.nextToken };
    },
  }),
  defineOperation({
    name: "DeleteVpc",
    summary: "Delete a VPC (its subnets and security groups must be gone)",
    request: compute.DeleteVpcRequest,
    response: compute.DeleteVpcResponse,
    mutates: true,
    kinds: ["vpc", "security-group"],
    handler: async (ctx: RequestContext, req: compute.DeleteVpcRequest): Promise<compute.DeleteVpcResponse> => {
      if (!req.VpcId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VpcId");
      await inTransaction(ctx.db, async (db) => {
        await lockVpc(db, ctx, req.VpcId);
        const { rows: [deps] } = await db.query<{ subnets: number; groups: number }>(
          `SELECT (SELECT count(*) FROM subnets WHERE vpc_id = $1)::int AS subnets,
                  (SELECT count(*) FROM security_groups WHERE vpc_id = $1 AND NOT is_default)::int AS groups`,
          [req.VpcId],
        );
        if (deps!.subnets || deps!.groups) throw new Ec2Error("DependencyViolation", `The vpc '${req.VpcId}' has dependencies and cannot be deleted.`);
        const { rows: groups } = await db.query<{ id: string }>("SELECT id FROM security_groups WHERE vpc_id = $1", [req.VpcId]);
        await db.query("UPDATE instances SET vpc_id = NULL WHERE vpc_id = $1", [req.VpcId]);
        await db.query("DELETE FROM instance_security_groups WHERE group_id = ANY($1)", [groups.map((g) => g.id)]);
        await db.query("DELETE FROM security_groups WHERE vpc_id = $1", [req.VpcId]);
        await deleteTagsOf(db, [req.VpcId, ...groups.map((g) => g.id)]);
        await db.query("DELETE FROM vpcs WHERE id = $1", [req.VpcId]);
      });
      return {};
    },
  }),
  defineOperation({
    name: "DescribeVpcAttribute",
    summary: "Describe one attribute of a VPC: enableDnsSupport, enableDnsHostnames or enableNetworkAddressUsageMetrics",
    request: compute.DescribeVpcAttributeRequest,
    response: compute.DescribeVpcAttributeResponse,
    mutates: false,
    kinds: ["vpc"],
    handler: async (ctx: RequestContext, req: compute.DescribeVpcAttributeRequest): Promise<compute.DescribeVpcAttributeResponse> => {
      if (!req.VpcId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VpcId");
      requireAttribute(req.Attribute, [...VPC_ATTRIBUTES.keys()]);
      const [vpc] = await findOwned(ctx, ctx.db, vpcKind, [req.VpcId]);
      const answer = compute.DescribeVpcAttributeResponse.fromPartial({ VpcId: vpc!.id });
      answer[VPC_ATTRIBUTES.get(req.Attribute)!] = { Value: false };
      return answer;
    },
  }),
  defineOperation({
    name: "CreateSubnet",
    summary: "Create a subnet in a VPC",
    request: compute.CreateSubnetRequest,
    response: compute.CreateSubnetResponse,
    mutates: true,
    kinds: ["subnet", "vpc"],
    handler: async (ctx: RequestContext, req: compute.CreateSubnetRequest): Promise<compute.CreateSubnetResponse> => {
      if (!req.VpcId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VpcId");
      if (!req.CidrBlock) throw new Ec2Error("MissingParameter", "The request must contain the parameter CidrBlock");
      requireIds(vpcKind, [req.VpcId]);
      const cidr = requireCidr(req.CidrBlock, "cidrBlock", ctx.config.CIRRUS_VPC_MIN_PREFIX, MAX_PREFIX);
      const zone = req.AvailabilityZone || ctx.config.zones[0]!;
      if (!ctx.config.zones.includes(zone)) {
        throw new Ec2Error("InvalidParameterValue", `Value (${truncate(zone)}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: ${ctx.config.zones.join(", ")}.`);
      }
      const tags = tagsFor("subnet", req.TagSpecifications, ["subnet"]);
      const subnet = await inTransaction(ctx.db, async (db) => {
        // The VPC row lock serializes subnet creation per VPC, so the overlap check holds.
        const vpc = await lockVpc(db, ctx, req.VpcId);
        if (!containsCidr(parseExactCidr(vpc.cidr)!, cidr)) throw new Ec2Error("InvalidSubnet.Range", `The CIDR '${cidrText(cidr)}' is invalid.`);
        const { rows: others } = await db.query<{ cidr: string }>("SELECT cidr FROM subnets WHERE vpc_id = $1", [vpc.id]);
        if (others.some((o) => overlaps(parseExactCidr(o.cidr)!, cidr))) throw new Ec2Error("InvalidSubnet.Conflict", `The CIDR '${cidrText(cidr)}' conflicts with another subnet`);
        return insertSubnet(db, ctx.principal.accountId, vpc.id, cidr, zone, false, tags);
      });
      ctx.log.info({ subnetId: subnet.id, vpcId: subnet.vpc_id, cidr: cidrText(cidr) }, "subnet created");
      await analyzeAfterBulkChange(ctx, size(cidr), ["subnet_addresses"]);
      const free = await freeAddresses(ctx.db, [subnet.id]);
      return { Subnet: subnetToProto(subnet, tags, free.get(subnet.id) ?? 0) };
    },
  }),
  defineOperation({
    name: "DescribeSubnets",
    summary: "Describe subnets (all pages unless --max-results or --next-token is given)",
    request: compute.DescribeSubnetsRequest,
    response: compute.DescribeSubnetsResponse,
    mutates: false,
    kinds: ["subnet"],
    handler: async (ctx: RequestContext, req: compute.DescribeSubnetsRequest): Promise<compute.DescribeSubnetsResponse> => {
      const page = await describeKind(ctx, subnetKind, { ids: req.SubnetIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken });
      return { Subnets: page.items, NextToken: page.nextToken };
    },
  }),
  defineOperation({
    name: "DeleteSubnet",
    summary: "Delete a subnet (no instances may use it)",
    request: compute.DeleteSubnetRequest,
    response: compute.DeleteSubnetResponse,
    mutates: true,
    kinds: ["subnet"],
    handler: async (ctx: RequestContext, req: compute.DeleteSubnetRequest): Promise<compute.DeleteSubnetResponse> => {
      if (!req.SubnetId) throw new Ec2Error("MissingParameter", "The request must contain the parameter SubnetId");
      await inTransaction(ctx.db, async (db) => {
        await findOwned(ctx, db, subnetKind, [req.SubnetId], { lock: true });
        const { rows: [inUse] } = await db.query("SELECT 1 FROM subnet_addresses WHERE subnet_id = $1 AND instance_id IS NOT NULL LIMIT 1", [req.SubnetId]);
        if (inUse) throw new Ec2Error("DependencyViolation", `The subnet '${req.SubnetId}' has dependencies and cannot be deleted.`);
        await deleteTagsOf(db, [req.SubnetId]);
        await db.query("DELETE FROM subnets WHERE id = $1", [req.SubnetId]);
      });
      return {};
    },
  }),
];

/**
 * Makes sure the account has its default VPC (CIRRUS_DEFAULT_VPC_CIDR) with a
 * default /20 subnet in every configured zone, as AWS does. Idempotent and
 * safe when several API processes start at once.
 */
export async function ensureDefaultNetwork(core: Pick<Core, "db" | "config" | "log">, accountId: string): Promise<void> {
  let addresses = 0;
  await inTransaction(core.db, async (db) => {
    await db.query("SELECT pg_advisory_xact_lock(hashtext('cirrus-default-network'), hashtext($1))", [accountId]);
    let { rows: [vpc] } = await db.query<VpcRow>("SELECT * FROM vpcs WHERE owner_id = $1 AND is_default", [accountId]);
    if (!vpc) vpc = await insertVpc(db, core, accountId, parseExactCidr(core.config.CIRRUS_DEFAULT_VPC_CIDR)!, true, []);
    // Subnets come from the VPC the account has, whatever the configuration says now.
    const cidr = parseExactCidr(vpc.cidr)!;
    // /20 per zone as in AWS (the whole VPC when it is smaller than that).
    const subnetPrefix = Math.max(cidr.prefix, 20);
    for (const [i, zone] of core.config.zones.entries()) {
      const { rows: [existing] } = await db.query("SELECT 1 FROM subnets WHERE vpc_id = $1 AND availability_zone = $2 AND default_for_az", [vpc.id, zone]);
      if (existing) continue;
      const offset = i * 2 ** (32 - subnetPrefix);
      if (offset >= size(cidr)) {
        core.log.warn({ zone }, "default VPC too small for a default subnet in this zone");
        continue;
      }
      await insertSubnet(db, accountId, vpc.id, { network: nthAddress(cidr, offset), prefix: subnetPrefix }, zone, true, []);
      addresses += 2 ** (32 - subnetPrefix);
    }
  });
  await analyzeAfterBulkChange(core, addresses, ["subnet_addresses"]);
}
