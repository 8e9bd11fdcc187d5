// VPC and subnet commands.
import { compute } from "@cirrus/proto";
import { defineCommand, type AnyCommandSpec } from "../command.js";
import { grid, type Columns } from "../output.js";
import { nameTag } from "./columns.js";
import { FILTERS, MAX_RESULTS, NEXT_TOKEN, TAG_SPECIFICATIONS } from "./common-params.js";

const api = compute.ComputeService;

const VPC_COLUMNS: Columns<compute.Vpc> = {
  VpcId: (v) => v.VpcId,
  CidrBlock: (v) => v.CidrBlock,
  State: (v) => v.State,
  IsDefault: (v) => v.IsDefault,
  Name: (v) => nameTag(v.Tags),
};

const SUBNET_COLUMNS: Columns<compute.Subnet> = {
  SubnetId: (s) => s.SubnetId,
  VpcId: (s) => s.VpcId,
  CidrBlock: (s) => s.CidrBlock,
  AvailabilityZone: (s) => s.AvailabilityZone,
  AvailableIpAddressCount: (s) => s.AvailableIpAddressCount,
  State: (s) => s.State,
  Name: (s) => nameTag(s.Tags),
};

export const networkCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "create-vpc",
    summary: "Create a VPC",
    rpc: api.createVpc,
    request: compute.CreateVpcRequest,
    response: compute.CreateVpcResponse,
    params: [{ flag: "cidr-block", kind: "string", description: "the IPv4 range, e.g. 10.0.0.0/16", required: true }, TAG_SPECIFICATIONS],
    table: (res) => grid(res.Vpc ? [res.Vpc] : [], VPC_COLUMNS),
  }),
  defineCommand({
    name: "describe-vpcs",
    summary: "Describe VPCs (all pages unless --max-results or --next-token is given)",
    rpc: api.describeVpcs,
    request: compute.DescribeVpcsRequest,
    response: compute.DescribeVpcsResponse,
    params: [
      { flag: "vpc-ids", kind: "string-list", description: "VPC IDs" },
      FILTERS("vpc-id, cidr-block, state, is-default, tag:<key>, …"),
      MAX_RESULTS,
      NEXT_TOKEN,
    ],
    listKey: "Vpcs",
    paginate: true,
    table: (res) => grid(res.Vpcs, VPC_COLUMNS),
  }),
  defineCommand({
    name: "delete-vpc",
    summary: "Delete a VPC (its subnets and security groups must be gone)",
    rpc: api.deleteVpc,
    request: compute.DeleteVpcRequest,
    response: compute.DeleteVpcResponse,
    params: [{ flag: "vpc-id", kind: "string", description: "the VPC", required: true }],
  }),
  defineCommand({
    name: "create-subnet",
    summary: "Create a subnet in a VPC",
    rpc: api.createSubnet,
    request: compute.CreateSubnetRequest,
    response: compute.CreateSubnetResponse,
    params: [
      { flag: "vpc-id", kind: "string", description: "the VPC", required: true },
      { flag: "cidr-block", kind: "string", description: "the IPv4 range, inside the VPC's", required: true },
      { flag: "availability-zone", kind: "string", description: "the zone, e.g. lab-1a" },
      TAG_SPECIFICATIONS,
    ],
    table: (res) => grid(res.Subnet ? [res.Subnet] : [], SUBNET_COLUMNS),
  }),
  defineCommand({
    name: "describe-subnets",
    summary: "Describe subnets (all pages unless --max-results or --next-token is given)",
    rpc: api.describeSubnets,
    request: compute.DescribeSubnetsRequest,
    response: compute.DescribeSubnetsResponse,
    params: [
      { flag: "subnet-ids", kind: "string-list", description: "subnet IDs" },
      FILTERS("subnet-id, vpc-id, cidr-block, availability-zone, default-for-az, tag:<key>, …"),
      MAX_RESULTS,
      NEXT_TOKEN,
    ],
    listKey: "Subnets",
    paginate: true,
    table: (res) => grid(res.Subnets, SUBNET_COLUMNS),
  }),
  defineCommand({
    name: "delete-subnet",
    summary: "Delete a subnet (no instances may use it)",
    rpc: api.deleteSubnet,
    request: compute.DeleteSubnetRequest,
    response: compute.DeleteSubnetResponse,
    params: [{ flag: "subnet-id", kind: "string", description: "the subnet", required: true }],
  }),
];
