// The security group kind: Create/Delete/Describe, Authorize/Revoke ingress
// and egress, and ModifyInstanceAttribute (an instance's groups). Every
// change marks the hosts it concerns (affected.ts) in its transaction and
// is pushed to them after the commit (hostState.ts).
import { newId } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { PoolClient } from "pg";
import type { Core, RequestContext } from "../context.js";
import { inTransaction, type Queryable } from "../db/tx.js";
import { describeKind, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { markHostsChanged } from "../hostState.js";
import { instanceKind } from "../instances/model.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { defineKind } from "../resource.js";
import { deleteTagsOf, insertTags, loadTags } from "../tags.js";
import { requireIds, tagsFor, truncate } from "../validate.js";
import { hostsConcernedByMembers, hostsWithMembers } from "./affected.js";
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

const groupNotFound = (m: readonly string[]) => new Ec2Error("InvalidGroup.NotFound", `The security group '${m.join(", ")}' does not exist`);

export const securityGroupKind = defineKind<GroupRow, compute.SecurityGroup>({
  name: "security-group",
  resourceType: "security-group",
  idPrefix: "sg",
  malformed: "InvalidGroupId.Malformed",
  table: "security_groups",
  notFound: groupNotFound,
  filters: { "group-id": "security_groups.id", "group-name": "security_groups.name", "vpc-id": "security_groups.vpc_id", description: "security_groups.description", "owner-id": "security_groups.owner_id" },
  toApi: async (ctx, groups) => {
    const ids = groups.map((g) => g.id);
    const [tags, { rows: rules }] = await Promise.all([
      loadTags(ctx.db, ids),
      ctx.db.query<RuleRow>("SELECT * FROM security_group_rules WHERE group_id = ANY($1) ORDER BY id", [ids]),
    ]);
    return groups.map((g) => ({
      GroupId: g.id, GroupName: g.name, Description: g.description, OwnerId: g.owner_id, VpcId: g.vpc_id,
      IpPermissions: toIpPermissions(rules.filter((r) => r.group_id === g.id && !r.is_egress).map(toSpec), g.owner_id),
      IpPermissionsEgress: toIpPermissions(rules.filter((r) => r.group_id === g.id && r.is_egress).map(toSpec), g.owner_id),
      Tags: tags.get(g.id) ?? [],
    }));
  },
});

/** The egress rule a new group starts with: all traffic to CIRRUS_DEFAULT_EGRESS_CIDR. */
const defaultEgress = (core: Pick<Core, "config">): RuleSpec => ({ protocol: "-1", fromPort: -1, toPort: -1, cidr: core.config.CIRRUS_DEFAULT_EGRESS_CIDR, sourceGroupId: null, description: "" });

/** The VPC's "default" group: members may talk to each other; egress open. */
export async function createDefaultSecurityGroup(db: PoolClient, core: Pick<Core, "config">, ownerId: string, vpcId: string): Promise<void> {
  const id = newId("sg");
  await db.query("INSERT INTO security_groups (id, owner_id, vpc_id, name, description, is_default) VALUES ($1,$2,$3,'default','default VPC security group',true)", [id, ownerId, vpcId]);
  await insertRules(db, id, false, [{ protocol: "-1", fromPort: -1, toPort: -1, cidr: null, sourceGroupId: id, description: "" }]);
  await insertRules(db, id, true, [defaultEgress(core)]);
}

async function defaultVpcId(ctx: RequestContext, db: Queryable = ctx.db): Promise<string> {
  const { rows: [vpc] } = await db.query<{ id: string }>("SELECT id FROM vpcs WHERE owner_id = $1 AND is_default", [ctx.principal.accountId]);
  if (!vpc) throw new Ec2Error("InvalidVpcID.NotFound", "No default VPC for this account");
  return vpc.id;
}

async function createSecurityGroup(ctx: RequestContext, req: compute.CreateSecurityGroupRequest): Promise<compute.CreateSecurityGroupResponse> {
  if (!req.GroupName) throw new Ec2Error("MissingParameter", "The request must contain the parameter GroupName");
  if (!req.Description) throw new Ec2Error("MissingParameter", "The request must contain the parameter GroupDescription");
  if (req.GroupName.length > 255 || !/^[\x20-\x7e]+$/.test(req.GroupName)) throw new Ec2Error("InvalidParameterValue", "Group names are 1 to 255 printable ASCII characters");
  if (req.Description.length > 255 || !/^[\x20-\x7e]+$/.test(req.Description)) throw new Ec2Error("InvalidParameterValue", "Group descriptions are 1 to 255 printable ASCII characters");
  if (req.GroupName.toLowerCase() === "default") throw new Ec2Error("InvalidParameterValue", "Cannot use reserved security group name: default");
  if (req.GroupName.toLowerCase().startsWith("sg-")) throw new Ec2Error("InvalidParameterValue", "Group names may not start with sg-");
  if (req.VpcId) requireIds({ idPrefix: "vpc", malformed: "InvalidVpcID.Malformed" }, [req.VpcId]);
  const tags = tagsFor("security-group", req.TagSpecifications, ["security-group"]);
  const id = newId("sg");
  await inTransaction(ctx.db, async (db) => {
    const vpcId = req.VpcId || (await defaultVpcId(ctx, db));
    const { rows: [vpc] } = await db.query("SELECT 1 FROM vpcs WHERE id = $1 AND owner_id = $2", [vpcId, ctx.principal.accountId]);
    if (!vpc) throw new Ec2Error("InvalidVpcID.NotFound", `The vpc ID '${vpcId}' does not exist`);
    const ins = await db.query(
      "INSERT INTO security_groups (id, owner_id, vpc_id, name, description) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (vpc_id, name) DO NOTHING",
      [id, ctx.principal.accountId, vpcId, req.GroupName, req.Description],
    );
    if (ins.rowCount === 0) throw new Ec2Error("InvalidGroup.Duplicate", `The security group '${truncate(req.GroupName)}' already exists for VPC '${vpcId}'`);
    // New groups allow all outbound traffic, as in EC2.
    await insertRules(db, id, true, [defaultEgress(ctx)]);
    await insertTags(db, ctx.principal.accountId, securityGroupKind.resourceType, [id], tags);
  });
  return { GroupId: id, Tags: tags };
}

/** The caller's group by id, or by name in the default VPC; locked for update. */
async function lockGroup(db: PoolClient, ctx: RequestContext, groupId: string, groupName: string): Promise<GroupRow> {
  if (!groupId && !groupName) throw new Ec2Error("MissingParameter", "The request must contain the parameter GroupId or GroupName");
  if (groupId) return (await findOwned(ctx, db, securityGroupKind, [groupId], { lock: true }))[0]!;
  const { rows: [g] } = await db.query<GroupRow>("SELECT * FROM security_groups WHERE name = $1 AND vpc_id = $2 FOR UPDATE", [groupName, await defaultVpcId(ctx, db)]);
  if (!g) throw groupNotFound([truncate(groupName)]);
  return g;
}

async function deleteSecurityGroup(ctx: RequestContext, req: compute.DeleteSecurityGroupRequest): Promise<compute.DeleteSecurityGroupResponse> {
  const id = await inTransaction(ctx.db, async (db) => {
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
    await deleteTagsOf(db, [g.id]);
    await db.query("DELETE FROM security_groups WHERE id = $1", [g.id]);
    return g.id;
  });
  return { Return: true, GroupId: id };
}

async function describeSecurityGroups(ctx: RequestContext, req: compute.DescribeSecurityGroupsRequest): Promise<compute.DescribeSecurityGroupsResponse> {
  const params: unknown[] = [];
  const where: string[] = [];
  if (req.GroupNames.length) {
    where.push(`security_groups.name = ANY($${params.push(req.GroupNames)})`, `security_groups.vpc_id = $${params.push(await defaultVpcId(ctx))}`);
  }
  const page = await describeKind(ctx, securityGroupKind, { ids: req.GroupIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken, where, params });
  if (req.GroupNames.length && req.Filters.length === 0) {
    const missing = req.GroupNames.filter((n) => !page.items.some((g) => g.GroupName === n));
    if (missing.length) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${missing.join(", ")}' does not exist in default VPC`);
  }
  return { SecurityGroups: page.items, NextToken: page.nextToken };
}

/** Source groups named by rules must exist in the same VPC. */
async function requireSourceGroups(db: PoolClient, g: GroupRow, rules: readonly RuleSpec[]): Promise<void> {
  const ids = [...new Set(rules.flatMap((r) => (r.sourceGroupId ? [r.sourceGroupId] : [])))];
  if (!ids.length) return;
  const { rows } = await db.query<{ id: string }>("SELECT id FROM security_groups WHERE id = ANY($1) AND vpc_id = $2 AND owner_id = $3", [ids, g.vpc_id, g.owner_id]);
  const missing = ids.filter((id) => !rows.some((r) => r.id === id));
  if (missing.length) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${missing.join(", ")}' does not exist in VPC '${g.vpc_id}'`);
}

async function authorizeSecurityGroup(ctx: RequestContext, egress: boolean, req: compute.AuthorizeSecurityGroupRequest): Promise<compute.AuthorizeSecurityGroupResponse> {
  const rules = rulesOf(req);
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(ruleKey(r))) throw new Ec2Error("InvalidPermission.Duplicate", `the specified rule "${describeRule(r)}" is given twice`);
    seen.add(ruleKey(r));
  }
  const { group, inserted, hosts } = await inTransaction(ctx.db, async (db) => {
    const group = await lockGroup(db, ctx, req.GroupId, req.GroupName);
    await requireSourceGroups(db, group, rules);
    const inserted = await insertRules(db, group.id, egress, rules);
    return { group, inserted, hosts: await markHostsChanged(db, await hostsWithMembers(db, [group.id])) };
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

async function revokeSecurityGroup(ctx: RequestContext, egress: boolean, req: compute.RevokeSecurityGroupRequest): Promise<compute.RevokeSecurityGroupResponse> {
  const byIds = req.SecurityGroupRuleIds.length > 0;
  if (byIds && (req.IpPermissions.length || req.IpProtocol)) throw new Ec2Error("InvalidParameterCombination", "SecurityGroupRuleIds cannot be combined with IpPermissions");
  const rules = byIds ? [] : rulesOf(req);
  const { unknown, hosts } = await inTransaction(ctx.db, async (db) => {
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
    return { unknown, hosts: await markHostsChanged(db, await hostsWithMembers(db, [group.id])) };
  });
  ctx.notifyHosts(hosts);
  return { Return: true, UnknownIpPermissions: toIpPermissions(unknown, ctx.principal.accountId) };
}

/** Checks that every group is the caller's and in the VPC; returns them deduplicated, in name order (as instances show them). */
export async function requireGroupsInVpc(db: Queryable, ctx: RequestContext, groupIds: readonly string[], vpcId: string): Promise<compute.GroupIdentifier[]> {
  requireIds(securityGroupKind, groupIds);
  const ids = [...new Set(groupIds)];
  const { rows } = await db.query<{ id: string; name: string }>(
    "SELECT id, name FROM security_groups WHERE id = ANY($1) AND vpc_id = $2 AND owner_id = $3 ORDER BY name",
    [ids, vpcId, ctx.principal.accountId],
  );
  const missing = ids.filter((id) => !rows.some((r) => r.id === id));
  if (missing.length) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${missing.join(", ")}' does not exist in VPC '${vpcId}'`);
  return rows.map((r) => ({ GroupId: r.id, GroupName: r.name }));
}

/**
 * ModifyInstanceAttribute's Groups: the instance's complete new set of
 * groups, all of its VPC; the hosts whose rules named the old groups or
 * name the new ones are told. Writes nothing when refused.
 */
export async function setInstanceGroups(ctx: RequestContext, instanceId: string, groups: readonly string[]): Promise<void> {
  const hosts = await inTransaction(ctx.db, async (db) => {
    const [inst] = await findOwned(ctx, db, instanceKind, [instanceId], { lock: true });
    if (!inst!.vpc_id || inst!.state === "terminated") throw new Ec2Error("IncorrectInstanceState", `The instance '${inst!.id}' is not in a state from which its groups can be changed.`);
    const ids = (await requireGroupsInVpc(db, ctx, groups, inst!.vpc_id)).map((g) => g.GroupId);
    // Hosts whose rules name the old groups, then those naming the new ones.
    const before = await hostsConcernedByMembers(db, [inst!.id]);
    await db.query("DELETE FROM instance_security_groups WHERE instance_id = $1", [inst!.id]);
    await db.query("INSERT INTO instance_security_groups (instance_id, group_id) SELECT $1, unnest($2::text[])", [inst!.id, ids]);
    return markHostsChanged(db, [...before, ...(await hostsConcernedByMembers(db, [inst!.id]))]);
  });
  ctx.notifyHosts(hosts);
}

const ruleOperation = (name: string, egress: boolean, summary: string): AnyOperation =>
  name.startsWith("Authorize")
    ? defineOperation({
      name, summary, request: compute.AuthorizeSecurityGroupRequest, response: compute.AuthorizeSecurityGroupResponse, mutates: true, kinds: ["security-group"],
      handler: (ctx: RequestContext, req: compute.AuthorizeSecurityGroupRequest) => authorizeSecurityGroup(ctx, egress, req),
    })
    : defineOperation({
      name, summary, request: compute.RevokeSecurityGroupRequest, response: compute.RevokeSecurityGroupResponse, mutates: true, kinds: ["security-group"],
      handler: (ctx: RequestContext, req: compute.RevokeSecurityGroupRequest) => revokeSecurityGroup(ctx, egress, req),
    });

export const securityGroupOperations: AnyOperation[] = [
  defineOperation({
    name: "CreateSecurityGroup",
    summary: "Create a security group in a VPC (default VPC if --vpc-id is absent)",
    request: compute.CreateSecurityGroupRequest,
    response: compute.CreateSecurityGroupResponse,
    mutates: true,
    kinds: ["security-group", "vpc"],
    handler: createSecurityGroup,
  }),
  defineOperation({
    name: "DeleteSecurityGroup",
    summary: "Delete a security group (by ID, or by name in the default VPC)",
    request: compute.DeleteSecurityGroupRequest,
    response: compute.DeleteSecurityGroupResponse,
    mutates: true,
    kinds: ["security-group"],
    handler: deleteSecurityGroup,
  }),
  defineOperation({
    name: "DescribeSecurityGroups",
    summary: "Describe security groups (all pages unless --max-results or --next-token is given)",
    request: compute.DescribeSecurityGroupsRequest,
    response: compute.DescribeSecurityGroupsResponse,
    mutates: false,
    kinds: ["security-group"],
    handler: describeSecurityGroups,
  }),
  ruleOperation("AuthorizeSecurityGroupIngress", false, "Allow inbound traffic: --ip-permissions, or --protocol/--port with --cidr or --source-group"),
  ruleOperation("AuthorizeSecurityGroupEgress", true, "Allow outbound traffic: --ip-permissions, or --protocol/--port with --cidr or --source-group"),
  ruleOperation("RevokeSecurityGroupIngress", false, "Remove inbound rules: by --security-group-rule-ids, --ip-permissions, or --protocol/--port/--cidr/--source-group"),
  ruleOperation("RevokeSecurityGroupEgress", true, "Remove outbound rules: by --security-group-rule-ids, --ip-permissions, or --protocol/--port/--cidr/--source-group"),
];
