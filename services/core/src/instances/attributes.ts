// DescribeInstanceAttribute and DescribeInstanceCreditSpecifications: what
// Terraform's aws_instance reads besides DescribeInstances. Of an
// instance's attributes only its security groups can change
// (ModifyInstanceAttribute, network/securityGroups.ts); every other one is
// how Cirrus runs each instance, and is answered as such.
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { describeRows, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { cpuCreditsOf, UNLIMITED_CREDIT_FAMILIES } from "../instanceTypes.js";
import { defineOperation } from "../operation.js";
import { requireAttribute, truncate } from "../validate.js";
import { instanceKind, loadExtras, ROOT_DEVICE_NAME, type InstanceRow } from "./model.js";

type Answer = (ctx: RequestContext, instance: InstanceRow) => Partial<compute.InstanceAttribute> | Promise<Partial<compute.InstanceAttribute>>;

/** Each attribute Cirrus answers, EC2's name → its value for one instance. */
const ANSWERS = new Map<string, Answer>([
  ["instanceType", (_, i) => ({ InstanceType: { Value: i.instance_type } })],
  // Cirrus has no kernel (aki-) or ramdisk (ari-) images: none, as for EC2's HVM instances.
  ["kernel", () => ({ KernelId: { Value: "" } })],
  ["ramdisk", () => ({ RamdiskId: { Value: "" } })],
  ["userData", (_, i) => ({ UserData: { Value: i.user_data } })],
  // Cirrus has no termination or stop protection: any instance may be terminated and stopped.
  ["disableApiTermination", () => ({ DisableApiTermination: { Value: false } })],
  ["disableApiStop", () => ({ DisableApiStop: { Value: false } })],
  // A guest that powers itself off ends stopped (the host reports it so), never terminated.
  ["instanceInitiatedShutdownBehavior", () => ({ InstanceInitiatedShutdownBehavior: { Value: "stop" } })],
  ["rootDeviceName", () => ({ RootDeviceName: { Value: ROOT_DEVICE_NAME } })],
  ["groupSet", async (ctx, i) => ({ Groups: (await loadExtras(ctx.db, [i.id])).groups.get(i.id) ?? [] })],
  // No EBS (the root disk is a copy-on-write file on the host) and virtio NICs, not ENA.
  ["ebsOptimized", () => ({ EbsOptimized: { Value: false } })],
  ["enaSupport", () => ({ EnaSupport: { Value: false } })],
  // The host's firewall drops whatever an instance sends from another address.
  ["sourceDestCheck", () => ({ SourceDestCheck: { Value: true } })],
]);

/** EC2's instance attributes that Cirrus does not answer: it has no volumes, product codes, SR-IOV or enclaves. */
const UNSERVED = ["blockDeviceMapping", "productCodes", "sriovNetSupport", "enclaveOptions"];

/** DescribeInstanceAttribute: the caller's instance (terminated ones while visible) and the one attribute asked for. */
async function describeInstanceAttribute(ctx: RequestContext, req: compute.DescribeInstanceAttributeRequest): Promise<compute.InstanceAttribute> {
  if (!req.InstanceId) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  requireAttribute(req.Attribute, [...ANSWERS.keys()], UNSERVED);
  const [instance] = await findOwned(ctx, ctx.db, instanceKind, [req.InstanceId]);
  return compute.InstanceAttribute.fromPartial({ InstanceId: instance!.id, ...(await ANSWERS.get(req.Attribute)!(ctx, instance!)) });
}

/**
 * DescribeInstanceCreditSpecifications: the CPU credit option of the named
 * instances, which must be burstable (else
 * InstanceCreditSpecification.NotSupported, as EC2 answers); without ids,
 * every instance of the caller with unlimited credits, as EC2 does.
 */
async function describeInstanceCreditSpecifications(ctx: RequestContext, req: compute.DescribeInstanceCreditSpecificationsRequest): Promise<compute.DescribeInstanceCreditSpecificationsResponse> {
  for (const f of req.Filters) if (f.Name !== "instance-id") throw new Ec2Error("InvalidParameterValue", `The filter '${truncate(f.Name)}' is invalid`);
  const params: unknown[] = [];
  const where = req.InstanceIds.length ? [] : [`split_part(instances.instance_type, '.', 1) = ANY($${params.push(UNLIMITED_CREDIT_FAMILIES)})`];
  const page = await describeRows(ctx, instanceKind, { ids: req.InstanceIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken, where, params });
  return {
    InstanceCreditSpecifications: page.rows.map((r) => {
      const credits = cpuCreditsOf(r.instance_type);
      if (!credits) throw new Ec2Error("InstanceCreditSpecification.NotSupported", `The instance ${r.id} is of type ${r.instance_type}, which is not a burstable performance instance type.`);
      return { InstanceId: r.id, CpuCredits: credits };
    }),
    NextToken: page.nextToken,
  };
}

export const instanceAttributeOperations = [
  defineOperation({
    name: "DescribeInstanceAttribute",
    summary: "Describe one attribute of an instance (userData, instanceType, groupSet, disableApiTermination…)",
    request: compute.DescribeInstanceAttributeRequest,
    response: compute.InstanceAttribute,
    mutates: false,
    kinds: ["instance", "security-group"],
    handler: describeInstanceAttribute,
  }),
  defineOperation({
    name: "DescribeInstanceCreditSpecifications",
    summary: "Describe the CPU credit option (standard or unlimited) of burstable instances",
    request: compute.DescribeInstanceCreditSpecificationsRequest,
    response: compute.DescribeInstanceCreditSpecificationsResponse,
    mutates: false,
    kinds: ["instance"],
    filters: ["instance-id"],
    handler: describeInstanceCreditSpecifications,
  }),
];
