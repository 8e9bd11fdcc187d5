// Elastic IP address commands.
import { compute } from "@cirrus/proto";
import { defineCommand, type AnyCommandSpec } from "../command.js";
import { grid } from "../output.js";
import { FILTERS, TAG_SPECIFICATIONS } from "./common-params.js";

const api = compute.ComputeService;

export const addressCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "allocate-address",
    summary: "Allocate an elastic IP address from the pool",
    rpc: api.allocateAddress,
    request: compute.AllocateAddressRequest,
    response: compute.AllocateAddressResponse,
    params: [
      { flag: "domain", kind: "string", description: "vpc (the only domain)" },
      { flag: "address", kind: "string", description: "a specific address from the pool" },
      { flag: "public-ipv4-pool", kind: "string", description: "the address pool" },
      TAG_SPECIFICATIONS,
    ],
  }),
  defineCommand({
    name: "associate-address",
    summary: "Associate an elastic IP with an instance (or one of its private addresses)",
    rpc: api.associateAddress,
    request: compute.AssociateAddressRequest,
    response: compute.AssociateAddressResponse,
    params: [
      { flag: "allocation-id", kind: "string", description: "the address (eipalloc-…)", required: true },
      { flag: "instance-id", kind: "string", description: "the instance" },
      { flag: "private-ip-address", kind: "string", description: "the private address to map to" },
      { flag: "allow-reassociation", kind: "flag", description: "move the address even if it is associated already" },
    ],
  }),
  defineCommand({
    name: "disassociate-address",
    summary: "Disassociate an elastic IP from its instance",
    rpc: api.disassociateAddress,
    request: compute.DisassociateAddressRequest,
    response: compute.DisassociateAddressResponse,
    params: [{ flag: "association-id", kind: "string", description: "the association (eipassoc-…)", required: true }],
  }),
  defineCommand({
    name: "release-address",
    summary: "Release an elastic IP back to the pool",
    rpc: api.releaseAddress,
    request: compute.ReleaseAddressRequest,
    response: compute.ReleaseAddressResponse,
    params: [{ flag: "allocation-id", kind: "string", description: "the address (eipalloc-…)", required: true }],
  }),
  defineCommand({
    name: "describe-addresses",
    summary: "Describe elastic IP addresses",
    rpc: api.describeAddresses,
    request: compute.DescribeAddressesRequest,
    response: compute.DescribeAddressesResponse,
    params: [
      { flag: "allocation-ids", kind: "string-list", description: "allocation IDs" },
      { flag: "public-ips", kind: "string-list", description: "public addresses" },
      FILTERS("allocation-id, association-id, instance-id, public-ip, private-ip-address, domain, tag:<key>, …"),
    ],
    listKey: "Addresses",
    table: (res) =>
      grid(res.Addresses, {
        PublicIp: (a) => a.PublicIp,
        AllocationId: (a) => a.AllocationId,
        AssociationId: (a) => a.AssociationId,
        InstanceId: (a) => a.InstanceId,
        PrivateIpAddress: (a) => a.PrivateIpAddress,
        Domain: (a) => a.Domain,
      }),
  }),
];
