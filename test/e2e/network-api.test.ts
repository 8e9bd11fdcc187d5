// The networking API against the real control plane (fake-driver host: this
// checks the API, allocators and the compiled host state, not packets).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { agent } from "@cirrus/proto";
import { Stack } from "../src/stack.js";

const stack = new Stack({ zones: ["lab-1a", "lab-1b"] });
let imageId = "";
let hostId = "";

const code = (e: { metadata?: { get(k: string): unknown[] } }) => e.metadata?.get("x-ec2-error-code")[0];
async function fails(method: string, req: object): Promise<string> {
  const err = await stack.call(method as never, req).then(() => undefined, (e) => e);
  expect(err, `${method} must fail`).toBeDefined();
  return code(err) as string;
}
async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of ["vpcs", "subnets", "subnet_addresses", "security_groups", "security_group_rules", "addresses", "instances"]) {
    out[t] = Number((await stack.pool.query(`SELECT count(*) FROM ${t}`)).rows[0].count);
  }
  return out;
}
const run = (over: object) => stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, ...over });

beforeAll(async () => {
  await stack.start();
  ({ hostId } = await stack.addAgent({ name: "fake1", driver: "fake", capacity: { vcpus: 1000, memoryMib: 1000 * 512, diskGib: 1000 } }));
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

describe("VPCs and subnets", () => {
  it("has a default VPC and subnet; instances get an address there and the default group", async () => {
    const { Vpcs } = await stack.call("describeVpcs", { Filters: [{ Name: "is-default", Values: ["true"] }] });
    expect(Vpcs).toHaveLength(1);
    expect(Vpcs[0].CidrBlock).toBe(stack.defaultVpcCidr);
    const res = await run({});
    const inst = res.Instances[0];
    expect(inst.VpcId).toBe(Vpcs[0].VpcId);
    expect(inst.PrivateIpAddress).toMatch(new RegExp(`^10\\.${stack.vpcOctet}\\.\\d+\\.\\d+$`));
    expect(inst.SecurityGroups.map((g: { GroupName: string }) => g.GroupName)).toEqual(["default"]);
  });

  it("creates, describes and deletes; refuses bad CIDRs, ranges and overlaps without writing", async () => {
    const { Vpc } = await stack.call("createVpc", { CidrBlock: "10.250.0.0/16" });
    const { Subnet } = await stack.call("createSubnet", { VpcId: Vpc.VpcId, CidrBlock: "10.250.1.0/24" });
    expect(Subnet.AvailableIpAddressCount).toBe(251);
    const before = await counts();
    expect(await fails("createVpc", { CidrBlock: "10.0.0.1/16" })).toBe("InvalidParameterValue");
    expect(await fails("createVpc", { CidrBlock: "300.0.0.0/16" })).toBe("InvalidParameterValue");
    expect(await fails("createVpc", { CidrBlock: "10.0.0.0/8" })).toBe("InvalidParameterValue");
    expect(await fails("createSubnet", { VpcId: Vpc.VpcId, CidrBlock: "10.251.0.0/24" })).toBe("InvalidSubnet.Range");
    expect(await fails("createSubnet", { VpcId: Vpc.VpcId, CidrBlock: "10.250.1.128/25" })).toBe("InvalidSubnet.Conflict");
    expect(await fails("createSubnet", { VpcId: "vpc-0123456789abcdef0", CidrBlock: "10.250.2.0/24" })).toBe("InvalidVpcID.NotFound");
    expect(await fails("deleteVpc", { VpcId: Vpc.VpcId })).toBe("DependencyViolation");
    expect(await counts()).toEqual(before);
    await stack.call("deleteSubnet", { SubnetId: Subnet.SubnetId });
    await stack.call("deleteVpc", { VpcId: Vpc.VpcId });
    expect(await fails("describeVpcs", { VpcIds: [Vpc.VpcId] })).toBe("InvalidVpcID.NotFound");
  });

  it("200 concurrent launches into one subnet never share an address; exhaustion is InsufficientFreeAddressesInSubnet", async () => {
    const { Vpc } = await stack.call("createVpc", { CidrBlock: "10.249.0.0/16" });
    const { Subnet } = await stack.call("createSubnet", { VpcId: Vpc.VpcId, CidrBlock: "10.249.0.0/24" });
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => run({ SubnetId: Subnet.SubnetId })));
    const ok = results.filter((r): r is PromiseFulfilledResult<any> => r.status === "fulfilled").map((r) => r.value.Instances[0].PrivateIpAddress);
    expect(ok).toHaveLength(200);
    expect(new Set(ok).size).toBe(200);
    // MaxResults/NextToken walk every instance exactly once.
    const seen: string[] = [];
    let token = "";
    do {
      const page = await stack.call("describeInstances", { MaxResults: 50, NextToken: token, Filters: [{ Name: "subnet-id", Values: [Subnet.SubnetId] }] });
      seen.push(...page.Reservations.flatMap((r: { Instances: { InstanceId: string }[] }) => r.Instances.map((i) => i.InstanceId)));
      token = page.NextToken;
    } while (token);
    expect(seen).toHaveLength(200);
    expect(new Set(seen).size).toBe(200);
    const { Subnet: small } = await stack.call("createSubnet", { VpcId: Vpc.VpcId, CidrBlock: "10.249.1.0/28" });
    const some = await Promise.allSettled(Array.from({ length: 13 }, () => run({ SubnetId: small.SubnetId })));
    const good = some.filter((r): r is PromiseFulfilledResult<any> => r.status === "fulfilled");
    expect(good).toHaveLength(11);
    for (const r of some) if (r.status === "rejected") expect(code(r.reason)).toBe("InsufficientFreeAddressesInSubnet");
    // Terminating gives the address back.
    const freed = good[0]!.value.Instances[0].InstanceId;
    await stack.call("terminateInstances", { InstanceIds: [freed] });
    await stack.waitForState([freed], "terminated");
    const again = await run({ SubnetId: small.SubnetId });
    expect(again.Instances[0].PrivateIpAddress).toBe(good[0]!.value.Instances[0].PrivateIpAddress);
  });
});

describe("security groups", () => {
  it("authorizes, describes, refuses duplicates and bad rules without writing, revokes, and guards deletion", async () => {
    const { GroupId: web } = await stack.call("createSecurityGroup", { GroupName: "web", Description: "web servers" });
    const { GroupId: app } = await stack.call("createSecurityGroup", { GroupName: "app", Description: "app servers" });
    expect(await fails("createSecurityGroup", { GroupName: "web", Description: "again" })).toBe("InvalidGroup.Duplicate");
    await stack.call("authorizeSecurityGroupIngress", { GroupId: web, IpProtocol: "tcp", FromPort: 80, ToPort: 80, CidrIp: "172.16.0.0/12" });
    await stack.call("authorizeSecurityGroupIngress", { GroupId: app, IpPermissions: [{ IpProtocol: "tcp", FromPort: 8080, ToPort: 8080, IpRanges: [], UserIdGroupPairs: [{ GroupId: web }] }] });
    const before = await counts();
    expect(await fails("authorizeSecurityGroupIngress", { GroupId: web, IpProtocol: "tcp", FromPort: 80, ToPort: 80, CidrIp: "172.16.0.0/12" })).toBe("InvalidPermission.Duplicate");
    expect(await fails("authorizeSecurityGroupIngress", { GroupId: web, IpProtocol: "tcp", FromPort: 0, ToPort: 65536, CidrIp: "10.0.0.0/8" })).toBe("InvalidParameterValue");
    expect(await fails("authorizeSecurityGroupIngress", { GroupId: web, IpProtocol: "tcp", FromPort: 22, ToPort: 22, CidrIp: "10.0.0.0/33" })).toBe("InvalidParameterValue");
    expect(await fails("authorizeSecurityGroupIngress", { GroupId: web, IpProtocol: "gre", CidrIp: "10.0.0.0/8" })).toBe("InvalidParameterValue");
    expect(await fails("authorizeSecurityGroupIngress", { GroupId: "sg-0123456789abcdef0", IpProtocol: "tcp", FromPort: 22, ToPort: 22, CidrIp: "10.0.0.0/8" })).toBe("InvalidGroup.NotFound");
    expect(await counts()).toEqual(before);

    const { SecurityGroups: [desc] } = await stack.call("describeSecurityGroups", { GroupIds: [app] });
    expect(desc.IpPermissions).toEqual([{ IpProtocol: "tcp", FromPort: 8080, ToPort: 8080, IpRanges: [], UserIdGroupPairs: [{ GroupId: web, UserId: "123456789012", Description: "" }] }]);
    expect(desc.IpPermissionsEgress[0]).toMatchObject({ IpProtocol: "-1", IpRanges: [{ CidrIp: stack.defaultVpcCidr }] });

    // The host's compiled firewall: app members accept 8080 from web members' addresses.
    const a = (await run({ SecurityGroupIds: [web] })).Instances[0];
    const b = (await run({ SecurityGroupIds: [app] })).Instances[0];
    const state = await heartbeatNetwork();
    const fwB = state.firewalls.find((f) => f.instanceId === b.InstanceId)!;
    expect(fwB.ingress).toContainEqual({ protocol: "tcp", fromPort: 8080, toPort: 8080, cidrs: [`${a.PrivateIpAddress}/32`] });
    const fwA = state.firewalls.find((f) => f.instanceId === a.InstanceId)!;
    expect(fwA.ingress).toEqual([{ protocol: "tcp", fromPort: 80, toPort: 80, cidrs: ["172.16.0.0/12"] }]);
    expect(state.metadata.find((m) => m.instanceId === a.InstanceId)).toMatchObject({ localIpv4: a.PrivateIpAddress, securityGroups: ["web"] });

    expect(await fails("deleteSecurityGroup", { GroupId: web })).toBe("DependencyViolation");
    const { SecurityGroups: [def] } = await stack.call("describeSecurityGroups", { GroupNames: ["default"] });
    expect(await fails("deleteSecurityGroup", { GroupId: def.GroupId })).toBe("CannotDelete");
    await stack.call("revokeSecurityGroupIngress", { GroupId: web, IpProtocol: "tcp", FromPort: 80, ToPort: 80, CidrIp: "172.16.0.0/12" });
    expect(await fails("revokeSecurityGroupIngress", { GroupId: web, IpProtocol: "tcp", FromPort: 80, ToPort: 80, CidrIp: "172.16.0.0/12" })).toBe("InvalidPermission.NotFound");
    await stack.call("modifyInstanceAttribute", { InstanceId: b.InstanceId, Groups: [web] });
    expect((await stack.instance(b.InstanceId)).SecurityGroups?.map((g) => g.GroupId)).toEqual([web]);
  });
});

const heartbeatNetwork = async (host = hostId): Promise<agent.HostNetworkState> => (await stack.hostState(host)).network!;

describe("elastic IPs", () => {
  it("1000 concurrent allocations never share an address; exhaustion is AddressLimitExceeded", async () => {
    const results = await Promise.allSettled(Array.from({ length: 1000 }, () => stack.call("allocateAddress", { Domain: "vpc" })));
    const ips = results.filter((r): r is PromiseFulfilledResult<any> => r.status === "fulfilled").map((r) => r.value.PublicIp);
    // A /24 pool: 254 usable addresses (never its network or broadcast address).
    expect(ips).toHaveLength(254);
    expect(new Set(ips).size).toBe(254);
    expect(ips.some((ip: string) => ip.endsWith(".0") || ip.endsWith(".255"))).toBe(false);
    for (const r of results) if (r.status === "rejected") expect(code(r.reason)).toBe("AddressLimitExceeded");
    const { Addresses } = await stack.call("describeAddresses", {});
    await Promise.all(Addresses.map((a: { AllocationId: string }) => stack.call("releaseAddress", { AllocationId: a.AllocationId })));
    expect((await stack.call("describeAddresses", {})).Addresses).toEqual([]);
  });

  it("associates, refuses a silent re-association, moves, disassociates and releases", async () => {
    const [a, b] = (await run({ MinCount: 2, MaxCount: 2 })).Instances;
    const { AllocationId, PublicIp } = await stack.call("allocateAddress", { Domain: "vpc" });
    expect(PublicIp.startsWith(stack.addressPool.split(".").slice(0, 3).join("."))).toBe(true);
    const { AssociationId } = await stack.call("associateAddress", { AllocationId, InstanceId: a.InstanceId });
    expect((await stack.instance(a.InstanceId)).PublicIpAddress).toBe(PublicIp);
    expect(await fails("associateAddress", { AllocationId, InstanceId: b.InstanceId })).toBe("Resource.AlreadyAssociated");
    expect(await fails("releaseAddress", { AllocationId })).toBe("InvalidIPAddress.InUse");
    const moved = await stack.call("associateAddress", { AllocationId, InstanceId: b.InstanceId, AllowReassociation: true });
    expect(moved.AssociationId).not.toBe(AssociationId);
    expect((await stack.instance(a.InstanceId)).PublicIpAddress).toBe("");
    expect((await stack.instance(b.InstanceId)).PublicIpAddress).toBe(PublicIp);
    expect((await heartbeatNetwork()).elasticIps).toContainEqual({ publicIp: PublicIp, privateIp: b.PrivateIpAddress, instanceId: b.InstanceId });
    await stack.call("disassociateAddress", { AssociationId: moved.AssociationId });
    expect(await fails("disassociateAddress", { AssociationId: moved.AssociationId })).toBe("InvalidAssociationID.NotFound");
    await stack.call("releaseAddress", { AllocationId });
    expect(await fails("releaseAddress", { AllocationId })).toBe("InvalidAllocationID.NotFound");
  });

  it("moving an address to an instance on another host moves the mapping between hosts", async () => {
    await stack.addAgent({ name: "fake2", driver: "fake", zone: "lab-1b", capacity: { vcpus: 8, memoryMib: 8192, diskGib: 8 } });
    const first = (await run({ Placement: { AvailabilityZone: "lab-1a" } })).Instances[0];
    const there = (await run({ Placement: { AvailabilityZone: "lab-1b" } })).Instances[0];
    const hostOf = async (id: string) => (await stack.pool.query("SELECT host_id FROM instances WHERE id = $1", [id])).rows[0].host_id as string;
    expect(await hostOf(first.InstanceId)).not.toBe(await hostOf(there.InstanceId));
    const { AllocationId, PublicIp } = await stack.call("allocateAddress", {});
    await stack.call("associateAddress", { AllocationId, InstanceId: first.InstanceId });
    const hostA = await hostOf(first.InstanceId);
    const hostB = await hostOf(there.InstanceId);
    expect((await heartbeatNetwork(hostA)).elasticIps.map((e) => e.publicIp)).toContain(PublicIp);
    await stack.call("associateAddress", { AllocationId, InstanceId: there.InstanceId, AllowReassociation: true });
    expect((await heartbeatNetwork(hostA)).elasticIps.map((e) => e.publicIp)).not.toContain(PublicIp);
    expect((await heartbeatNetwork(hostB)).elasticIps).toContainEqual({ publicIp: PublicIp, privateIp: there.PrivateIpAddress, instanceId: there.InstanceId });
  });
});
