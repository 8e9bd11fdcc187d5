// gRPC adapter for the compute API: decode, call the domain, map errors at
// the edge. No business rules live here.
import { randomUUID } from "node:crypto";
import type { AgentClients } from "@cirrus/common";
import { Ec2Error, unaryHandler } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "../domain/context.js";
import { describeAvailabilityZones, describeInstanceTypes, describeRegions } from "../domain/catalogue.js";
import { deregisterImage, describeImages, registerImage } from "../domain/images.js";
import { getConsoleOutput } from "../domain/instances/console.js";
import { describeInstances } from "../domain/instances/describe.js";
import { runInstances } from "../domain/instances/run.js";
import { changeInstances } from "../domain/instances/transitions.js";
import { allocateAddress, associateAddress, describeAddresses, disassociateAddress, releaseAddress } from "../domain/network/addresses.js";
import { authorizeSecurityGroup, createSecurityGroup, deleteSecurityGroup, describeSecurityGroups, modifyInstanceAttribute, revokeSecurityGroup } from "../domain/network/securityGroups.js";
import { createSubnet, createVpc, deleteSubnet, deleteVpc, describeSubnets, describeVpcs } from "../domain/network/vpcs.js";
import { createKeyPair, deleteKeyPair, describeKeyPairs, importKeyPair } from "../domain/keyPairs.js";

export function computeHandlers(ctx: DomainContext, agents: AgentClients): compute.ComputeServer {
  /** Each call gets a request id and a child logger; expected EC2 errors log at info, others at error. */
  const rpc = <Req, Res>(name: string, fn: (c: DomainContext, req: Req) => Promise<Res> | Res) =>
    unaryHandler<Req, Res>(
      async (req) => fn({ ...ctx, log: ctx.log.child({ requestId: randomUUID(), rpc: name }) }, req),
      (err) => {
        if (err instanceof Ec2Error && err.code !== "InternalError") ctx.log.info({ rpc: name, code: err.code }, err.message);
        else ctx.log.error({ rpc: name, err }, "request failed");
      },
    );
  return {
    runInstances: rpc("RunInstances", runInstances),
    describeInstances: rpc("DescribeInstances", describeInstances),
    startInstances: rpc("StartInstances", async (c, r: compute.StartInstancesRequest) => ({ StartingInstances: await changeInstances(c, "start", r.InstanceIds) })),
    stopInstances: rpc("StopInstances", async (c, r: compute.StopInstancesRequest) => ({ StoppingInstances: await changeInstances(c, "stop", r.InstanceIds, { force: r.Force }) })),
    rebootInstances: rpc("RebootInstances", async (c, r: compute.RebootInstancesRequest) => (await changeInstances(c, "reboot", r.InstanceIds), {})),
    terminateInstances: rpc("TerminateInstances", async (c, r: compute.TerminateInstancesRequest) => ({ TerminatingInstances: await changeInstances(c, "terminate", r.InstanceIds) })),
    getConsoleOutput: rpc("GetConsoleOutput", (c, r: compute.GetConsoleOutputRequest) => getConsoleOutput(c, agents, r)),
    registerImage: rpc("RegisterImage", registerImage),
    describeImages: rpc("DescribeImages", describeImages),
    deregisterImage: rpc("DeregisterImage", deregisterImage),
    describeInstanceTypes: rpc("DescribeInstanceTypes", describeInstanceTypes),
    describeAvailabilityZones: rpc("DescribeAvailabilityZones", describeAvailabilityZones),
    describeRegions: rpc("DescribeRegions", describeRegions),
    createKeyPair: rpc("CreateKeyPair", createKeyPair),
    importKeyPair: rpc("ImportKeyPair", importKeyPair),
    describeKeyPairs: rpc("DescribeKeyPairs", describeKeyPairs),
    deleteKeyPair: rpc("DeleteKeyPair", deleteKeyPair),
    createVpc: rpc("CreateVpc", createVpc),
    describeVpcs: rpc("DescribeVpcs", describeVpcs),
    deleteVpc: rpc("DeleteVpc", deleteVpc),
    createSubnet: rpc("CreateSubnet", createSubnet),
    describeSubnets: rpc("DescribeSubnets", describeSubnets),
    deleteSubnet: rpc("DeleteSubnet", deleteSubnet),
    createSecurityGroup: rpc("CreateSecurityGroup", createSecurityGroup),
    deleteSecurityGroup: rpc("DeleteSecurityGroup", deleteSecurityGroup),
    describeSecurityGroups: rpc("DescribeSecurityGroups", describeSecurityGroups),
    authorizeSecurityGroupIngress: rpc("AuthorizeSecurityGroupIngress", (c, r: compute.AuthorizeSecurityGroupRequest) => authorizeSecurityGroup(c, false, r)),
    authorizeSecurityGroupEgress: rpc("AuthorizeSecurityGroupEgress", (c, r: compute.AuthorizeSecurityGroupRequest) => authorizeSecurityGroup(c, true, r)),
    revokeSecurityGroupIngress: rpc("RevokeSecurityGroupIngress", (c, r: compute.RevokeSecurityGroupRequest) => revokeSecurityGroup(c, false, r)),
    revokeSecurityGroupEgress: rpc("RevokeSecurityGroupEgress", (c, r: compute.RevokeSecurityGroupRequest) => revokeSecurityGroup(c, true, r)),
    modifyInstanceAttribute: rpc("ModifyInstanceAttribute", modifyInstanceAttribute),
    allocateAddress: rpc("AllocateAddress", allocateAddress),
    associateAddress: rpc("AssociateAddress", associateAddress),
    disassociateAddress: rpc("DisassociateAddress", disassociateAddress),
    releaseAddress: rpc("ReleaseAddress", releaseAddress),
    describeAddresses: rpc("DescribeAddresses", describeAddresses),
  };
}
