// What Terraform's AWS provider reads besides the Describe actions, against
// a real Postgres: DescribeInstanceAttribute, DescribeInstanceCreditSpecifications
// (and DescribeInstanceTypes' BurstablePerformanceSupported, which decides
// whether it is called), DescribeAccountAttributes, DescribeVpcAttribute,
// DescribeAddressesAttribute, and the revoke of a new group's default egress
// rule; each scoped to the caller's account.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../src/context.js";
import { Ec2Error } from "../src/errors.js";
import { syncAddressPool } from "../src/network/addresses.js";
import { ensureDefaultNetwork } from "../src/network/vpcs.js";
import { operationNamed } from "../src/operations.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

const A: Principal = { accountId: "123456789012", operator: false };
const B: Principal = { accountId: "210987654321", operator: false };
/** An account without a default VPC. */
const N: Principal = { accountId: "444444444444", operator: false };

let t: TestCore;
let imageId = "";
beforeAll(async () => {
  t = await testCore({ CIRRUS_ADDRESS_POOL: "198.18.210.0/29" });
  await syncAddressPool(t.core);
  await addHost(t.core, "attrs", { vcpus: 64, memoryMib: 65536, diskGib: 640 });
  await ensureDefaultNetwork(t.core, B.accountId);
  imageId = await addImage(t.core, A.accountId);
});
afterAll(() => t?.close());

const call = <Res = any>(p: Principal, name: string, req: unknown): Promise<Res> => {
  const op = operationNamed(name)!;
  return op.handler(t.ctx(p), op.request.fromPartial(req as never));
};
const refusal = (p: Promise<unknown>) => p.then(() => undefined, (err: Ec2Error) => ({ code: err.code, message: err.message }));
const launch = async (instanceType: string, userData = "") =>
  (await call<compute.Reservation>(A, "RunInstances", { ImageId: imageId, InstanceType: instanceType, MinCount: 1, MaxCount: 1, UserData: userData })).Instances[0]!;

describe("DescribeInstanceAttribute", () => {
  it("answers each attribute as Cirrus runs the instance, groupSet as ModifyInstanceAttribute left it", async () => {
    const instance = await launch("t2.micro", "IyEvYmluL3NoCmVjaG8gaGk=");
    const attribute = (Attribute: string) => call<compute.InstanceAttribute>(A, "DescribeInstanceAttribute", { InstanceId: instance.InstanceId, Attribute });
    const only = async (Attribute: string) => {
      const { InstanceId, Groups, BlockDeviceMappings, ...rest } = await attribute(Attribute);
      expect(InstanceId).toBe(instance.InstanceId);
      if (Attribute === "groupSet") return Groups;
      if (Attribute === "blockDeviceMapping") return BlockDeviceMappings;
      return Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    };
    expect(await only("userData")).toEqual({ UserData: { Value: "IyEvYmluL3NoCmVjaG8gaGk=" } });
    expect(await only("instanceType")).toEqual({ InstanceType: { Value: "t2.micro" } });
    expect(await only("disableApiTermination")).toEqual({ DisableApiTermination: { Value: false } });
    expect(await only("disableApiStop")).toEqual({ DisableApiStop: { Value: false } });
    expect(await only("instanceInitiatedShutdownBehavior")).toEqual({ InstanceInitiatedShutdownBehavior: { Value: "stop" } });
    expect(await only("rootDeviceName")).toEqual({ RootDeviceName: { Value: instance.RootDeviceName } });
    expect(await only("sourceDestCheck")).toEqual({ SourceDestCheck: { Value: instance.SourceDestCheck } });
    expect(instance.SourceDestCheck).toBe(true);
    expect(await only("ebsOptimized")).toEqual({ EbsOptimized: { Value: false } });
    expect(await only("enaSupport")).toEqual({ EnaSupport: { Value: false } });
    expect(await only("kernel")).toEqual({ KernelId: { Value: "" } });
    expect(await only("groupSet")).toEqual(instance.SecurityGroups);
    expect(await only("blockDeviceMapping")).toEqual([]);

    const { GroupId } = await call<compute.CreateSecurityGroupResponse>(A, "CreateSecurityGroup", { GroupName: "attr-web", Description: "web" });
    await call(A, "ModifyInstanceAttribute", { InstanceId: instance.InstanceId, Groups: [GroupId] });
    expect(await only("groupSet")).toEqual([{ GroupId, GroupName: "attr-web" }]);
  });

  it("refuses what it cannot answer, and another account's instance is not found", async () => {
    const instance = await launch("t2.micro");
    const describeAttribute = (p: Principal, InstanceId: string, Attribute: string) => refusal(call(p, "DescribeInstanceAttribute", { InstanceId, Attribute }));
    expect(await describeAttribute(A, instance.InstanceId, "productCodes")).toMatchObject({ code: "Unsupported" });
    expect(await describeAttribute(A, instance.InstanceId, "colour")).toEqual({ code: "InvalidParameterValue", message: "Value (colour) for parameter attribute is invalid. Unknown attribute." });
    expect(await describeAttribute(A, instance.InstanceId, "")).toMatchObject({ code: "MissingParameter" });
    expect(await describeAttribute(A, "", "userData")).toMatchObject({ code: "MissingParameter" });
    expect(await describeAttribute(A, "i-nothex", "userData")).toMatchObject({ code: "InvalidInstanceID.Malformed" });
    expect(await describeAttribute(B, instance.InstanceId, "userData")).toEqual({ code: "InvalidInstanceID.NotFound", message: `The instance ID '${instance.InstanceId}' does not exist` });
  });
});

describe("DescribeInstanceCreditSpecifications", () => {
  it("answers EC2's defaults (T2 standard, T3 unlimited), refuses an instance that is not burstable, and without ids lists the unlimited ones", async () => {
    const t2 = await launch("t2.micro");
    const t3 = await launch("t2.micro");
    // The default catalogue has no T3 type: the instance's row says what it is.
    await t.core.db.query("UPDATE instances SET instance_type = 't3.micro' WHERE id = $1", [t3.InstanceId]);
    const m5 = await launch("m5.large");
    const credits = (p: Principal, req: object) => call<compute.DescribeInstanceCreditSpecificationsResponse>(p, "DescribeInstanceCreditSpecifications", req);
    expect((await credits(A, { InstanceIds: [t2.InstanceId, t3.InstanceId] })).InstanceCreditSpecifications).toEqual([
      { InstanceId: t2.InstanceId, CpuCredits: "standard" },
      { InstanceId: t3.InstanceId, CpuCredits: "unlimited" },
    ]);
    expect(await refusal(credits(A, { InstanceIds: [m5.InstanceId] }))).toMatchObject({ code: "InstanceCreditSpecification.NotSupported" });
    expect((await credits(A, {})).InstanceCreditSpecifications).toEqual([{ InstanceId: t3.InstanceId, CpuCredits: "unlimited" }]);
    expect((await credits(A, { Filters: [{ Name: "instance-id", Values: [t2.InstanceId] }] })).InstanceCreditSpecifications).toEqual([]);
    expect(await refusal(credits(A, { Filters: [{ Name: "instance-type", Values: ["t3.micro"] }] }))).toMatchObject({ code: "InvalidParameterValue" });
    expect(await refusal(credits(B, { InstanceIds: [t3.InstanceId] }))).toMatchObject({ code: "InvalidInstanceID.NotFound" });
    expect((await credits(B, {})).InstanceCreditSpecifications).toEqual([]);
  });

  it("is called by Terraform for the types DescribeInstanceTypes says are burstable", async () => {
    const types = await call<compute.DescribeInstanceTypesResponse>(A, "DescribeInstanceTypes", { InstanceTypes: ["t2.micro", "m5.large"] });
    expect(types.InstanceTypes.map((i) => [i.InstanceType, i.BurstablePerformanceSupported])).toEqual([["t2.micro", true], ["m5.large", false]]);
    const burstable = await call<compute.DescribeInstanceTypesResponse>(A, "DescribeInstanceTypes", { Filters: [{ Name: "burstable-performance-supported", Values: ["true"] }] });
    expect(burstable.InstanceTypes.length).toBeGreaterThan(0);
    expect(burstable.InstanceTypes.every((i) => i.InstanceType.startsWith("t2."))).toBe(true);
  });
});

describe("DescribeAccountAttributes", () => {
  const attributes = async (p: Principal, AttributeNames: string[] = []) =>
    Object.fromEntries((await call<compute.DescribeAccountAttributesResponse>(p, "DescribeAccountAttributes", { AttributeNames })).AccountAttributes.map((a) => [a.AttributeName, a.AttributeValues.map((v) => v.AttributeValue)]));

  it("answers the account's default VPC, VPC only, the address pool's size and EC2's defaults for the limits Cirrus does not set", async () => {
    const { Vpcs: [defaultVpc] } = await call<compute.DescribeVpcsResponse>(A, "DescribeVpcs", { Filters: [{ Name: "is-default", Values: ["true"] }] });
    expect(await attributes(A)).toEqual({
      "supported-platforms": ["VPC"],
      "default-vpc": [defaultVpc!.VpcId],
      "max-instances": ["20"],
      // 198.18.210.0/29 without its network and broadcast addresses.
      "max-elastic-ips": ["6"],
      "vpc-max-elastic-ips": ["6"],
      "vpc-max-security-groups-per-interface": ["5"],
    });
    expect((await attributes(B, ["default-vpc"]))["default-vpc"]).not.toEqual([defaultVpc!.VpcId]);
    expect(await attributes(N, ["default-vpc", "supported-platforms", "default-vpc"])).toEqual({ "default-vpc": ["none"], "supported-platforms": ["VPC"] });
    expect(await refusal(call(A, "DescribeAccountAttributes", { AttributeNames: ["max-volumes"] }))).toMatchObject({ code: "InvalidParameterValue" });
  });
});

describe("DescribeVpcAttribute", () => {
  it("answers false for DNS support, DNS hostnames and usage metrics (DHCP only), for the caller's VPCs only", async () => {
    const { Vpc } = await call<compute.CreateVpcResponse>(A, "CreateVpc", { CidrBlock: "10.77.0.0/16" });
    const vpcAttribute = (p: Principal, Attribute: string) => call<compute.DescribeVpcAttributeResponse>(p, "DescribeVpcAttribute", { VpcId: Vpc!.VpcId, Attribute });
    expect(await vpcAttribute(A, "enableDnsSupport")).toEqual({ VpcId: Vpc!.VpcId, EnableDnsSupport: { Value: false }, EnableDnsHostnames: undefined, EnableNetworkAddressUsageMetrics: undefined });
    expect((await vpcAttribute(A, "enableDnsHostnames")).EnableDnsHostnames).toEqual({ Value: false });
    expect((await vpcAttribute(A, "enableNetworkAddressUsageMetrics")).EnableNetworkAddressUsageMetrics).toEqual({ Value: false });
    expect(await refusal(vpcAttribute(A, "enableClassicLink"))).toMatchObject({ code: "InvalidParameterValue" });
    expect(await refusal(vpcAttribute(A, ""))).toMatchObject({ code: "MissingParameter" });
    expect(await refusal(vpcAttribute(B, "enableDnsSupport"))).toMatchObject({ code: "InvalidVpcID.NotFound" });
  });
});

describe("DescribeAddressesAttribute", () => {
  it("answers the caller's addresses without a reverse DNS record; another account's is not found", async () => {
    const mine = await call<compute.AllocateAddressResponse>(A, "AllocateAddress", { Domain: "vpc" });
    const theirs = await call<compute.AllocateAddressResponse>(B, "AllocateAddress", { Domain: "vpc" });
    const attribute = (p: Principal, req: object) => call<compute.DescribeAddressesAttributeResponse>(p, "DescribeAddressesAttribute", { Attribute: "domain-name", ...req });
    expect(await attribute(A, { AllocationIds: [mine.AllocationId] })).toEqual({ Addresses: [{ PublicIp: mine.PublicIp, AllocationId: mine.AllocationId }], NextToken: "" });
    expect((await attribute(A, {})).Addresses.map((a) => a.AllocationId)).toEqual([mine.AllocationId]);
    expect(await refusal(attribute(A, { AllocationIds: [theirs.AllocationId] }))).toMatchObject({ code: "InvalidAllocationID.NotFound" });
    expect(await refusal(attribute(A, { Attribute: "ptr-record" }))).toMatchObject({ code: "InvalidParameterValue" });
  });
});

describe("a new security group's default egress rule", () => {
  // Terraform's aws_security_group revokes it right after CreateSecurityGroup, and fails if it is absent.
  const terraformRevoke = (p: Principal, GroupId: string, CidrIp: string) =>
    call<compute.RevokeSecurityGroupResponse>(p, "RevokeSecurityGroupEgress", { GroupId, IpPermissions: [{ IpProtocol: "-1", FromPort: 0, ToPort: 0, IpRanges: [{ CidrIp }] }] });
  const egress = async (GroupId: string) => (await call<compute.DescribeSecurityGroupsResponse>(A, "DescribeSecurityGroups", { GroupIds: [GroupId] })).SecurityGroups[0]!.IpPermissionsEgress;

  it("is EC2's (all traffic to 0.0.0.0/0), and revoking exactly it as Terraform does leaves the group with no egress", async () => {
    const { GroupId } = await call<compute.CreateSecurityGroupResponse>(A, "CreateSecurityGroup", { GroupName: "tf-egress", Description: "terraform" });
    expect(await egress(GroupId)).toEqual([{ IpProtocol: "-1", FromPort: undefined, ToPort: undefined, IpRanges: [{ CidrIp: "0.0.0.0/0", Description: "" }], UserIdGroupPairs: [] }]);
    expect(await refusal(terraformRevoke(B, GroupId, "0.0.0.0/0"))).toMatchObject({ code: "InvalidGroup.NotFound" });
    expect(await terraformRevoke(A, GroupId, "0.0.0.0/0")).toEqual({ Return: true, UnknownIpPermissions: [] });
    expect(await egress(GroupId)).toEqual([]);
    expect(await refusal(terraformRevoke(A, GroupId, "0.0.0.0/0"))).toMatchObject({ code: "InvalidPermission.NotFound" });
  });

  it("goes to CIRRUS_DEFAULT_EGRESS_CIDR where the operator narrows it (as the test stack does), and revokes the same way", async () => {
    const narrowed = await testCore({ CIRRUS_DEFAULT_EGRESS_CIDR: "10.99.0.0/16" });
    try {
      const op = operationNamed("CreateSecurityGroup")!;
      const { GroupId } = await op.handler(narrowed.ctx(A), compute.CreateSecurityGroupRequest.fromPartial({ GroupName: "tf-narrow", Description: "terraform" }));
      const revoke = operationNamed("RevokeSecurityGroupEgress")!;
      const revokeOf = (CidrIp: string) => revoke.handler(narrowed.ctx(A), compute.RevokeSecurityGroupRequest.fromPartial({ GroupId, IpPermissions: [{ IpProtocol: "-1", FromPort: 0, ToPort: 0, IpRanges: [{ CidrIp }] }] }));
      await expect(revokeOf("0.0.0.0/0")).rejects.toMatchObject({ code: "InvalidPermission.NotFound" });
      expect(await revokeOf("10.99.0.0/16")).toEqual({ Return: true, UnknownIpPermissions: [] });
    } finally {
      await narrowed.close();
    }
  });
});
