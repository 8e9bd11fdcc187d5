// Security groups: Create/Delete/Describe, Authorize/Revoke ingress and
// egress, ModifyInstanceAttribute (an instance's groups). Every change is
// pushed to the hosts of the VPC at once (DomainContext.notifyHosts), and
// the agents' reconcile loop re-applies the same state on every heartbeat.
import { Ec2Error, newId } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { PoolClient } from "pg";
import type { DomainContext } from "../context.js";
import { inTransaction } from "../../db/tx.js";
import { describePage } from "../describe.js";
import { loadInstances } from "../instances/describe.js";
import { insertTags } from "../tags.js";
import { requireIds, requireNonEmpty, tagsFor, truncate } from "../validate.js";
import { describeRule, ruleKey, rulesOf, toIpPermissions, type RuleSpec } from "./permissions.js";

interface GroupRow {
  id: string;
  owner_id: string;
  vpc_id: string;
  name: string;
  description: string;
  is_default: boolean;
}

interface RuleRow {
  id: string;
  group_id: string;
  is_egress: boolean;
  protocol: RuleSpec["protocol"];
  from_port: number;
  to_port: number;
  cidr: string | null;
  source_group_id: string | null;
  description: string;
}

const toSpec = (r: RuleRow): RuleSpec => ({ protocol: r.protocol, fromPort: r.from_port, toPort: r.to_port, cidr: r.cidr, sourceGroupId: r.source_group_id, description: r.description });

async function insertRules(db: PoolClient, groupId: string, egress: boolean, rules: readonly RuleSpec[]): Promise<RuleRow[]> {
  const out: RuleRow[] = [];
  for (const r of rules) {
    const { rows: [row] } = await db.query<RuleRow>(
      `INSERT INTO security_group_rules (id, group_id, is_egress, protocol, from_port, to_port, cidr, source_group_id, description)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING RETURNING *`,
      [newId("sgr"), groupId, egress, r.protocol, r.fromPort, r.toPort, r.cidr, r.sourceGroupId, r.description],
    );
    if (!row) throw new Ec2Error("InvalidPermission.Duplicate", `the specified rule "${describeRule(r)}" already exists`);
    out.push(row);
  }
  return out;
}

/** The VPC's "default" group: members may talk to each other; egress open. */
export async function createDefaultSecurityGroup(db: PoolClient, ctx: DomainContext, vpcId: string): Promise<void> {
  const id = newId("sg");
  await db.query("INSERT INTO security_groups (id, owner_id, vpc_id, name, description, is_default) VALUES ($1,$2,$3,'default','default VPC security group',true)", [id, ctx.config.CIRRUS_ACCOUNT_ID, vpcId]);
  await insertRules(db, id, false, [{ protocol: "-1", fromPort: -1, toPort: -1, cidr: null, sourceGroupId: id, description: "" }]);
  await insertRules(db, id, true, [defaultEgress(ctx)]);
}

/** The egress rule a new group starts with: all traffic to CIRRUS_DEFAULT_EGRESS_CIDR. */
const defaultEgress = (ctx: DomainContext): RuleSpec => ({ protocol: "-1", fromPort: -1, toPort: -1, cidr: ctx.config.CIRRUS_DEFAULT_EGRESS_CIDR, sourceGroupId: null, description: "" });

async function defaultVpcId(ctx: DomainContext, db: PoolClient | DomainContext["pool"] = ctx.pool): Promise<string> {
  const { rows: [vpc] } = await db.query<{ id: string }>("SELECT id FROM vpcs WHERE owner_id = $1 AND is_default", [ctx.config.CIRRUS_ACCOUNT_ID]);
  if (!vpc) throw new Ec2Error("InvalidVpcID.NotFound", "No default VPC for this account");
  return vpc.id;
}

export async function createSecurityGroup(ctx: DomainContext, req: compute.CreateSecurityGroupRequest): Promise<compute.CreateSecurityGroupResponse> {
  if (!req.GroupName) throw new Ec2Error("MissingParameter", "The request must contain the parameter GroupName");
  if (!req.Description) throw new Ec2Error("MissingParameter", "The request must contain the parameter GroupDescription");
  if (req.GroupName.length > 255 || !/^[\x20-\x7e]+$/.test(req.GroupName)) throw new Ec2Error("InvalidParameterValue", "Group names are 1 to 255 printable ASCII characters");
  if (req.Description.length > 255 || !/^[\x20-\x7e]+$/.test(req.Description)) throw new Ec2Error("InvalidParameterValue", "Group descriptions are 1 to 255 printable ASCII characters");
  if (req.GroupName.toLowerCase() === "default") throw new Ec2Error("InvalidParameterValue", "Cannot use reserved security group name: default");
  if (req.GroupName.toLowerCase().startsWith("sg-")) throw new Ec2Error("InvalidParameterValue", "Group names may not start with sg-");
  if (req.VpcId) requireIds("vpc", [req.VpcId]);
  const tags = tagsFor("security-group", req.TagSpecifications, ["security-group"]);
  const id = newId("sg");
  await inTransaction(ctx.pool, async (db) => {
    const vpcId = req.VpcId || (await defaultVpcId(ctx, db));
    const { rows: [vpc] } = await db.query("SELECT 1 FROM vpcs WHERE id = $1 AND owner_id = $2", [vpcId, ctx.config.CIRRUS_ACCOUNT_ID]);
    if (!vpc) throw new Ec2Error("InvalidVpcID.NotFound", `The vpc ID '${vpcId}' does not exist`);
    const ins = await db.query(
      "INSERT INTO security_groups (id, owner_id, vpc_id, name, description) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (vpc_id, name) DO NOTHING",
      [id, ctx.config.CIRRUS_ACCOUNT_ID, vpcId, req.GroupName, req.Description],
    );
    if (ins.rowCount === 0) throw new Ec2Error("InvalidGroup.Duplicate", `The security group '${truncate(req.GroupName)}' already exists for VPC '${vpcId}'`);
    // New groups allow all outbound traffic, as in EC2.
    await insertRules(db, id, true, [defaultEgress(ctx)]);
    await insertTags(db, [id], tags);
  });
  return { GroupId: id, Tags: tags };
}

/** The group by id, or by name in the default VPC; locked for update. */
async function lockGroup(db: PoolClient, ctx: DomainContext, groupId: string, groupName: string): Promise<GroupRow> {
  if (!groupId && !groupName) throw new Ec2Error("MissingParameter", "The request must contain the parameter GroupId or GroupName");
  if (groupId) requireIds("sg", [groupId]);
  const { rows: [g] } = groupId
    ? await db.query<GroupRow>("SELECT * FROM security_groups WHERE id = $1 AND owner_id = $2 FOR UPDATE", [groupId, ctx.config.CIRRUS_ACCOUNT_ID])
    : await db.query<GroupRow>("SELECT * FROM security_groups WHERE name = $1 AND vpc_id = $2 FOR UPDATE", [groupName, await defaultVpcId(ctx, db)]);
  if (!g) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${truncate(groupId || groupName)}' does not exist`);
  return g;
}

export async function deleteSecurityGroup(ctx: DomainContext, req: compute.DeleteSecurityGroupRequest): Promise<compute.DeleteSecurityGroupResponse> {
  const id = await inTransaction(ctx.pool, async (db) => {
    const g = await lockGroup(db, ctx, req.GroupId, req.GroupName);
    if (g.is_default) throw new Ec2Error("CannotDelete", `the specified group: "${g.id}" name: "default" cannot be deleted by a user`);
    const { rows: [member] } = await db.query(
      "SELECT 1 FROM instance_security_groups m JOIN instances i ON i.id = m.instance_id WHERE m.group_id = $1 AND i.state <> 'terminated' LIMIT 1",
      [g.id],
    );
    const { rows: [ref] } = await db.query("SELECT 1 FROM security_group_rules WHERE source_group_id = $1 AND group_id <> $1 LIMIT 1", [g.id]);
    if (member || ref) throw new Ec2Error("DependencyViolation", `resource ${g.id} has a dependent object`);
    await db.query("DELETE FROM instance_security_groups WHERE group_id = $1", [g.id]);
    await db.query("DELETE FROM security_group_rules WHERE group_id = $1", [g.id]);
    await db.query("DELETE FROM tags WHERE resource_id = $1", [g.id]);
    await db.query("DELETE FROM security_groups WHERE id = $1", [g.id]);
    return g.id;
  });
  return { Return: true, GroupId: id };
}

export async function describeSecurityGroups(ctx: DomainContext, req: compute.DescribeSecurityGroupsRequest): Promise<compute.DescribeSecurityGroupsResponse> {
  requireIds("sg", req.GroupIds);
  const params: unknown[] = [];
  const where: string[] = [];
  if (req.GroupNames.length) {
    where.push(`security_groups.name = ANY($${params.push(req.GroupNames)})`, `security_groups.vpc_id = $${params.push(await defaultVpcId(ctx))}`);
  }
  const page = await describePage<GroupRow>(ctx, {
    table: "security_groups", ids: req.GroupIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken, where, params,
    filterColumns: { "group-id": "security_groups.id", "group-name": "security_groups.name", "vpc-id": "security_groups.vpc_id", description: "security_groups.description", "owner-id": "security_groups.owner_id" },
    notFound: (m) => new Ec2Error("InvalidGroup.NotFound", `The security group '${m.join(", ")}' does not exist`),
  });
  if (req.GroupNames.length && req.Filters.length === 0) {
    const missing = req.GroupNames.filter((n) => !page.rows.some((r) => r.name === n));
    if (missing.length) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${missing.join(", ")}' does not exist in default VPC`);
  }
  const { rows: rules } = await ctx.pool.query<RuleRow>("SELECT * FROM security_group_rules WHERE group_id = ANY($1) ORDER BY id", [page.rows.map((r) => r.id)]);
  return {
    SecurityGroups: page.rows.map((g) => ({
      GroupId: g.id, GroupName: g.name, Description: g.description, OwnerId: g.owner_id, VpcId: g.vpc_id,
      IpPermissions: toIpPermissions(rules.filter((r) => r.group_id === g.id && !r.is_egress).map(toSpec), g.owner_id),
      IpPermissionsEgress: toIpPermissions(rules.filter((r) => r.group_id === g.id && r.is_egress).map(toSpec), g.owner_id),
      Tags: page.tags.get(g.id) ?? [],
    })),
    NextToken: page.nextToken,
  };
}

/** Source groups named by rules must exist in the same VPC. */
async function requireSourceGroups(db: PoolClient, g: GroupRow, rules: readonly RuleSpec[]): Promise<void> {
  const ids = [...new Set(rules.flatMap((r) => (r.sourceGroupId ? [r.sourceGroupId] : [])))];
  if (!ids.length) return;
  const { rows } = await db.query<{ id: string }>("SELECT id FROM security_groups WHERE id = ANY($1) AND vpc_id = $2", [ids, g.vpc_id]);
  const missing = ids.filter((id) => !rows.some((r) => r.id === id));
  if (missing.length) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${missing.join(", ")}' does not exist in VPC '${g.vpc_id}'`);
}

/** Hosts running instances of the VPC: every one may hold rules that depend on this group. */
async function hostsOfVpc(db: PoolClient | DomainContext["pool"], vpcId: string): Promise<string[]> {
  const { rows } = await db.query<{ host_id: string }>("SELECT DISTINCT host_id FROM instances WHERE vpc_id = $1 AND state <> 'terminated' AND host_id IS NOT NULL", [vpcId]);
  return rows.map((r) => r.host_id);
}

export async function authorizeSecurityGroup(ctx: DomainContext, egress: boolean, req: compute.AuthorizeSecurityGroupRequest): Promise<compute.AuthorizeSecurityGroupResponse> {
  const rules = rulesOf(req);
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(ruleKey(r))) throw new Ec2Error("InvalidPermission.Duplicate", `the specified rule "${describeRule(r)}" is given twice`);
    seen.add(ruleKey(r));
  }
  const { group, inserted, hosts } = await inTransaction(ctx.pool, async (db) => {
    const group = await lockGroup(db, ctx, req.GroupId, req.GroupName);
    await requireSourceGroups(db, group, rules);
    const inserted = await insertRules(db, group.id, egress, rules);
    return { group, inserted, hosts: await hostsOfVpc(db, group.vpc_id) };
  });
  ctx.notifyHosts(hosts);
  ctx.log.info({ groupId: group.id, egress, rules: inserted.length }, "security group rules authorized");
  return {
    Return: true,
    SecurityGroupRules: inserted.map((r) => ({
      SecurityGroupRuleId: r.id, GroupId: r.group_id, GroupOwnerId: group.owner_id, IsEgress: r.is_egress, IpProtocol: r.protocol,
      FromPort: r.from_port, ToPort: r.to_port, CidrIpv4: r.cidr ?? "", ReferencedGroupInfo: r.source_group_id ? { GroupId: r.source_group_id, UserId: group.owner_id } : undefined,
      Description: r.description,
    })),
  };
}

export async function revokeSecurityGroup(ctx: DomainContext, egress: boolean, req: compute.RevokeSecurityGroupRequest): Promise<compute.RevokeSecurityGroupResponse> {
  const byIds = req.SecurityGroupRuleIds.length > 0;
  if (byIds && (req.IpPermissions.length || req.IpProtocol)) throw new Ec2Error("InvalidParameterCombination", "SecurityGroupRuleIds cannot be combined with IpPermissions");
  const rules = byIds ? [] : rulesOf(req);
  const { unknown, hosts } = await inTransaction(ctx.pool, async (db) => {
    const group = await lockGroup(db, ctx, req.GroupId, req.GroupName);
    const { rows: existing } = await db.query<RuleRow>("SELECT * FROM security_group_rules WHERE group_id = $1 AND is_egress = $2", [group.id, egress]);
    const doomed = byIds
      ? existing.filter((r) => req.SecurityGroupRuleIds.includes(r.id))
      : existing.filter((r) => rules.some((q) => ruleKey(q) === ruleKey(toSpec(r))));
    const unknown = byIds ? [] : rules.filter((q) => !existing.some((r) => ruleKey(q) === ruleKey(toSpec(r))));
    if (doomed.length === 0 || (byIds && doomed.length !== req.SecurityGroupRuleIds.length)) {
      throw new Ec2Error("InvalidPermission.NotFound", "The specified rule does not exist in this security group.");
    }
    await db.query("DELETE FROM security_group_rules WHERE id = ANY($1)", [doomed.map((r) => r.id)]);
    return { unknown, hosts: await hostsOfVpc(db, group.vpc_id) };
  });
  ctx.notifyHosts(hosts);
  return { Return: true, UnknownIpPermissions: toIpPermissions(unknown, ctx.config.CIRRUS_ACCOUNT_ID) };
}

/** Checks that every group exists in the VPC; returns them in order, deduplicated. */
export async function requireGroupsInVpc(db: PoolClient | DomainContext["pool"], ctx: DomainContext, groupIds: readonly string[], vpcId: string): Promise<string[]> {
  requireIds("sg", groupIds);
  const ids = [...new Set(groupIds)];
  const { rows } = await db.query<{ id: string }>("SELECT id FROM security_groups WHERE id = ANY($1) AND vpc_id = $2 AND owner_id = $3", [ids, vpcId, ctx.config.CIRRUS_ACCOUNT_ID]);
  const missing = ids.filter((id) => !rows.some((r) => r.id === id));
  if (missing.length) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${missing.join(", ")}' does not exist in VPC '${vpcId}'`);
  return ids;
}

export async function modifyInstanceAttribute(ctx: DomainContext, req: compute.ModifyInstanceAttributeRequest): Promise<compute.ModifyInstanceAttributeResponse> {
  if (!req.InstanceId) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  requireNonEmpty("Groups", req.Groups);
  const [inst] = await loadInstances(ctx, [req.InstanceId]);
  if (!inst!.vpc_id || inst!.state === "terminated") throw new Ec2Error("IncorrectInstanceState", `The instance '${inst!.id}' is not in a state from which its groups can be changed.`);
  const hosts = await inTransaction(ctx.pool, async (db) => {
    const ids = await requireGroupsInVpc(db, ctx, req.Groups, inst!.vpc_id!);
    await db.query("DELETE FROM instance_security_groups WHERE instance_id = $1", [inst!.id]);
    await db.query("INSERT INTO instance_security_groups (instance_id, group_id) SELECT $1, unnest($2::text[])", [inst!.id, ids]);
    return hostsOfVpc(db, inst!.vpc_id!);
  });
  ctx.notifyHosts(hosts);
  return {};
}
