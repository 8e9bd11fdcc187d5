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
  /** An action in the API that is not implemented yet: a clear error, never a silent success. */
  const unsupported = (name: string) => rpc(name, () => {
    throw new Ec2Error("Unsupported", `${name} is not supported yet by this Cirrus version`);
  });
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
    createKeyPair: unsupported("CreateKeyPair"),
    importKeyPair: unsupported("ImportKeyPair"),
    describeKeyPairs: unsupported("DescribeKeyPairs"),
    deleteKeyPair: unsupported("DeleteKeyPair"),
    createVpc: unsupported("CreateVpc"),
    describeVpcs: unsupported("DescribeVpcs"),
    deleteVpc: unsupported("DeleteVpc"),
    createSubnet: unsupported("CreateSubnet"),
    describeSubnets: unsupported("DescribeSubnets"),
    deleteSubnet: unsupported("DeleteSubnet"),
    createSecurityGroup: unsupported("CreateSecurityGroup"),
    deleteSecurityGroup: unsupported("DeleteSecurityGroup"),
    describeSecurityGroups: unsupported("DescribeSecurityGroups"),
    authorizeSecurityGroupIngress: unsupported("AuthorizeSecurityGroupIngress"),
    authorizeSecurityGroupEgress: unsupported("AuthorizeSecurityGroupEgress"),
    revokeSecurityGroupIngress: unsupported("RevokeSecurityGroupIngress"),
    revokeSecurityGroupEgress: unsupported("RevokeSecurityGroupEgress"),
    modifyInstanceAttribute: unsupported("ModifyInstanceAttribute"),
    allocateAddress: unsupported("AllocateAddress"),
    associateAddress: unsupported("AssociateAddress"),
    disassociateAddress: unsupported("DisassociateAddress"),
    releaseAddress: unsupported("ReleaseAddress"),
    describeAddresses: unsupported("DescribeAddresses"),
  };
}
