// Security group commands: create, delete, describe, and the four rule
// commands, which take `--ip-permissions` or the aws CLI's shortcut options.
import { compute } from "@cirrus/proto";
import type { Rpc } from "../client.js";
import { defineCommand, type AnyCommandSpec } from "../command.js";
import { SIMPLE_RULE_PARAMS, simpleRule } from "../ipPermissions.js";
import { grid } from "../output.js";
import type { JsonMessageFns, ParamSpec } from "../params.js";
import { FILTERS, MAX_RESULTS, NEXT_TOKEN, TAG_SPECIFICATIONS } from "./common-params.js";
import { nameTag } from "./columns.js";

const api = compute.ComputeService;

/** One rule in a table cell: `tcp 22 10.0.0.0/8,sg-…`; `all` for protocol -1. */
export function ruleSummary(p: compute.IpPermission): string {
  const protocol = p.IpProtocol === "-1" ? "all" : p.IpProtocol;
  const ports = p.FromPort === undefined || p.FromPort === -1 ? "" : p.FromPort === p.ToPort ? ` ${p.FromPort}` : ` ${p.FromPort}-${p.ToPort}`;
  const sources = [...p.IpRanges.map((r) => r.CidrIp), ...p.UserIdGroupPairs.map((g) => g.GroupId)].join(",");
  return `${protocol}${ports}${sources ? ` ${sources}` : ""}`;
}

const GROUP: ParamSpec = { flag: "group-id", kind: "string", description: "the security group" };
const GROUP_NAME: ParamSpec = { flag: "group-name", kind: "string", description: "the security group's name (instead of --group-id)" };
const IP_PERMISSIONS: ParamSpec = {
  flag: "ip-permissions",
  kind: "structure-list",
  description: "rules: IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=10.0.0.0/16}] (or JSON)",
};

/** Authorize/revoke ingress/egress: the same options under four names. */
function ruleCommand<Req, Res>(o: {
  name: string;
  summary: string;
  rpc: Rpc<Req, Res>;
  request: JsonMessageFns<Req>;
  response: { toJSON(m: Res): unknown };
  params: ParamSpec[];
}): AnyCommandSpec {
  return defineCommand<Req, Res>({
    ...o,
    params: [GROUP, GROUP_NAME, IP_PERMISSIONS, ...SIMPLE_RULE_PARAMS, ...o.params],
    prepare: simpleRule,
  });
}

export const securityGroupCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "create-security-group",
    summary: "Create a security group in a VPC (default VPC if --vpc-id is absent)",
    rpc: api.createSecurityGroup,
    request: compute.CreateSecurityGroupRequest,
    response: compute.CreateSecurityGroupResponse,
    params: [
      { flag: "group-name", kind: "string", description: "the group's name, unique in its VPC", required: true },
      { flag: "description", kind: "string", description: "a description", required: true },
      { flag: "vpc-id", kind: "string", description: "the VPC" },
      TAG_SPECIFICATIONS,
    ],
  }),
  defineCommand({
    name: "delete-security-group",
    summary: "Delete a security group (by ID, or by name in the default VPC)",
    rpc: api.deleteSecurityGroup,
    request: compute.DeleteSecurityGroupRequest,
    response: compute.DeleteSecurityGroupResponse,
    params: [GROUP, { ...GROUP_NAME, description: "the security group's name (default VPC)" }],
  }),
  defineCommand({
    name: "describe-security-groups",
    summary: "Describe security groups (all pages unless --max-results or --next-token is given)",
    rpc: api.describeSecurityGroups,
    request: compute.DescribeSecurityGroupsRequest,
    response: compute.DescribeSecurityGroupsResponse,
    params: [
      { flag: "group-ids", kind: "string-list", description: "security group IDs" },
      { flag: "group-names", kind: "string-list", description: "security group names (default VPC)" },
      FILTERS("group-id, group-name, vpc-id, description, tag:<key>, …"),
      MAX_RESULTS,
      NEXT_TOKEN,
    ],
    listKey: "SecurityGroups",
    paginate: true,
    table: (res) =>
      grid(res.SecurityGroups, {
        GroupId: (g) => g.GroupId,
        GroupName: (g) => g.GroupName,
        VpcId: (g) => g.VpcId,
        Ingress: (g) => g.IpPermissions.map(ruleSummary).join("; "),
        Egress: (g) => g.IpPermissionsEgress.map(ruleSummary).join("; "),
        Name: (g) => nameTag(g.Tags),
      }),
  }),
  ruleCommand({
    name: "authorize-security-group-ingress",
    summary: "Allow inbound traffic: --ip-permissions, or --protocol/--port with --cidr or --source-group",
    rpc: api.authorizeSecurityGroupIngress,
    request: compute.AuthorizeSecurityGroupRequest,
    response: compute.AuthorizeSecurityGroupResponse,
    params: [TAG_SPECIFICATIONS],
  }),
  ruleCommand({
    name: "authorize-security-group-egress",
    summary: "Allow outbound traffic: --ip-permissions, or --protocol/--port with --cidr or --source-group",
    rpc: api.authorizeSecurityGroupEgress,
    request: compute.AuthorizeSecurityGroupRequest,
    response: compute.AuthorizeSecurityGroupResponse,
    params: [TAG_SPECIFICATIONS],
  }),
  ruleCommand({
    name: "revoke-security-group-ingress",
    summary: "Remove inbound rules: by --security-group-rule-ids, --ip-permissions, or --protocol/--port/--cidr/--source-group",
    rpc: api.revokeSecurityGroupIngress,
    request: compute.RevokeSecurityGroupRequest,
    response: compute.RevokeSecurityGroupResponse,
    params: [{ flag: "security-group-rule-ids", kind: "string-list", description: "rule IDs (sgr-…)" }],
  }),
  ruleCommand({
    name: "revoke-security-group-egress",
    summary: "Remove outbound rules: by --security-group-rule-ids, --ip-permissions, or --protocol/--port/--cidr/--source-group",
    rpc: api.revokeSecurityGroupEgress,
    request: compute.RevokeSecurityGroupRequest,
    response: compute.RevokeSecurityGroupResponse,
    params: [{ flag: "security-group-rule-ids", kind: "string-list", description: "rule IDs (sgr-…)" }],
  }),
];
