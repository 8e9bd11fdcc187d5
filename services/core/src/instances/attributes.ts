// DescribeInstanceAttribute, ModifyInstanceAttribute and
// DescribeInstanceCreditSpecifications: what Terraform's aws_instance reads
// and changes besides DescribeInstances. Of an instance's attributes its
// security groups (network/securityGroups.ts), its shutdown behaviour and
// its volumes' DeleteOnTermination can change; every other one is how
// Cirrus runs each instance, and is answered as such.
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { inTransaction } from "../db/tx.js";
import { describeRows, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { cpuCreditsOf, UNLIMITED_CREDIT_FAMILIES } from "../instanceTypes.js";
import { defineOperation } from "../operation.js";
import { setInstanceGroups } from "../network/securityGroups.js";
import { requireAttribute, requireIds, truncate } from "../validate.js";
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
  ["instanceInitiatedShutdownBehavior", (_, i) => ({ InstanceInitiatedShutdownBehavior: { Value: i.shutdown_behavior } })],
  ["blockDeviceMapping", async (ctx, i) => ({ BlockDeviceMappings: (await loadExtras(ctx.db, [i.id])).volumes.get(i.id) ?? [] })],
  ["rootDeviceName", () => ({ RootDeviceName: { Value: ROOT_DEVICE_NAME } })],
  ["groupSet", async (ctx, i) => ({ Groups: (await loadExtras(ctx.db, [i.id])).groups.get(i.id) ?? [] })],
  // The root disk is a copy-on-write file on the host, not EBS; NICs are virtio, not ENA.
  ["ebsOptimized", () => ({ EbsOptimized: { Value: false } })],
  ["enaSupport", () => ({ EnaSupport: { Value: false } })],
  // The host's firewall drops whatever an instance sends from another address.
  ["sourceDestCheck", () => ({ SourceDestCheck: { Value: true } })],
]);

/** EC2's instance attributes that Cirrus does not answer: it has no product codes, SR-IOV or enclaves. */
const UNSERVED = ["productCodes", "sriovNetSupport", "enclaveOptions"];

/** The attributes ModifyInstanceAttribute changes; EC2's others are how Cirrus runs every instance. */
const MODIFIABLE = ["groupSet", "instanceInitiatedShutdownBehavior", "blockDeviceMapping"];

function shutdownBehavior(value: string): "stop" | "terminate" {
  if (value !== "stop" && value !== "terminate") throw new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter instanceInitiatedShutdownBehavior is invalid. Valid values are: stop, terminate.`);
  return value;
}

/** DeleteOnTermination of volumes attached to the instance, by device name; each device must hold one of its volumes. */
async function setDeleteOnTermination(ctx: RequestContext, instanceId: string, mappings: readonly compute.InstanceBlockDeviceMappingSpecification[]): Promise<void> {
  await inTransaction(ctx.db, async (db) => {
    const [inst] = await findOwned(ctx, db, instanceKind, [instanceId], { lock: true });
    for (const m of mappings) {
      if (m.Ebs?.DeleteOnTermination === undefined) throw new Ec2Error("MissingParameter", `The request must contain the parameter BlockDeviceMapping.Ebs.DeleteOnTermination for ${truncate(m.DeviceName)}`);
      const { rows: [v] } = await db.query<{ id: string }>(
        "UPDATE volumes SET delete_on_termination = $3 WHERE instance_id = $1 AND device = $2 AND ($4 = '' OR id = $4) RETURNING id",
        [inst!.id, m.DeviceName, m.Ebs.DeleteOnTermination, m.Ebs.VolumeId],
      );
      if (!v) throw new Ec2Error("InvalidInstanceAttributeValue", `No device is currently mapped at ${truncate(m.DeviceName)}${m.Ebs.VolumeId ? ` with volume ${truncate(m.Ebs.VolumeId)}` : ""}`);
    }
  });
}

/** ModifyInstanceAttribute: one attribute per call, as in EC2. */
async function modifyInstanceAttribute(ctx: RequestContext, req: compute.ModifyInstanceAttributeRequest): Promise<compute.ModifyInstanceAttributeResponse> {
  if (!req.InstanceId) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  requireIds(instanceKind, [req.InstanceId]);
  const given = [req.Groups.length > 0, req.InstanceInitiatedShutdownBehavior !== undefined, req.BlockDeviceMappings.length > 0, req.Attribute !== ""].filter(Boolean).length;
  if (given === 0) throw new Ec2Error("MissingParameter", "The request must contain an attribute to modify");
  if (given > 1) throw new Ec2Error("InvalidParameterCombination", "Only one attribute can be modified at a time");
  if (req.Attribute) {
    requireAttribute(req.Attribute, ["instanceInitiatedShutdownBehavior"], [...ANSWERS.keys(), ...UNSERVED].filter((a) => a !== "instanceInitiatedShutdownBehavior"));
    if (!req.Value) throw new Ec2Error("MissingParameter", "The request must contain the parameter Value");
  }
  if (req.Groups.length) await setInstanceGroups(ctx, req.InstanceId, req.Groups);
  else if (req.BlockDeviceMappings.length) await setDeleteOnTermination(ctx, req.InstanceId, req.BlockDeviceMappings);
  else {
    const behavior = shutdownBehavior(req.InstanceInitiatedShutdownBehavior?.Value ?? req.Value);
    await inTransaction(ctx.db, async (db) => {
      const [inst] = await findOwned(ctx, db, instanceKind, [req.InstanceId], { lock: true });
      await db.query("UPDATE instances SET shutdown_behavior = $2 WHERE id = $1", [inst!.id, behavior]);
    });
  }
  return {};
}

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
    name: "ModifyInstanceAttribute",
    summary: `Change one attribute of an instance (${MODIFIABLE.join(", ")}; --groups replaces the whole set)`,
    request: compute.ModifyInstanceAttributeRequest,
    response: compute.ModifyInstanceAttributeResponse,
    mutates: true,
    kinds: ["instance", "security-group", "volume"],
    handler: modifyInstanceAttribute,
  }),
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
