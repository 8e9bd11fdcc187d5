// The AWS SDK for JavaScript v3 (@aws-sdk/client-ec2, @aws-sdk/client-sts),
// unchanged, against the real stack over the Query API with real SigV4
// signatures: a whole session on a libvirt host (the SDK's own waiters drive
// it), the SDK's paginators over many instances on a fake-driver host, and
// how Cirrus's errors surface as the SDK's typed exceptions.
import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateKeyPairCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateTagsCommand,
  CreateVpcCommand,
  DescribeAddressesCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeRegionsCommand,
  DescribeSecurityGroupsCommand,
  DescribeTagsCommand,
  DisassociateAddressCommand,
  EC2Client,
  EC2ServiceException,
  GetConsoleOutputCommand,
  paginateDescribeImages,
  paginateDescribeInstances,
  paginateDescribeSecurityGroups,
  paginateDescribeTags,
  ReleaseAddressCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  type Instance,
} from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, waitUntil } from "../src/stack.js";

// Two zones: the libvirt host in lab-1a runs the session's real VMs, the
// fake-driver host in lab-1b the many instances the paginators walk over, so
// no real VM is booted where one adds nothing.
const REAL_ZONE = "lab-1a";
const FAKE_ZONE = "lab-1b";
const stack = new Stack({ zones: [REAL_ZONE, FAKE_ZONE] });
let ec2: EC2Client;
let imageId = "";
/** A subnet of the fake zone, for the launches that need no real VM. */
let fakeSubnetId = "";

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "kvm1", driver: "libvirt", zone: REAL_ZONE, capacity: { vcpus: 4, memoryMib: 4096, diskGib: 20 } });
  await stack.addAgent({ name: "fake1", driver: "fake", zone: FAKE_ZONE, capacity: { vcpus: 64, memoryMib: 65536, diskGib: 1000 } });
  imageId = await stack.registerTestImage(`sdk-${stack.runId}`);
  ec2 = new EC2Client({ endpoint: stack.queryEndpoint, region: "lab-1", credentials: stack.key });
  // Its own VPC, so these launches depend on no default subnet of that zone
  // (the fake driver has no network: nothing of it reaches the host).
  const { Vpc } = await ec2.send(new CreateVpcCommand({ CidrBlock: "10.249.0.0/16" }));
  const { Subnet } = await ec2.send(new CreateSubnetCommand({ VpcId: Vpc!.VpcId, CidrBlock: "10.249.0.0/24", AvailabilityZone: FAKE_ZONE }));
  fakeSubnetId = Subnet!.SubnetId!;
});
afterAll(async () => {
  ec2?.destroy();
  await stack.stop();
});

/** The SDK's waiters poll every 15 s or more by default; the stack answers within a second or two. */
const waiter = (maxWaitTime: number) => ({ client: ec2, maxWaitTime, minDelay: 1, maxDelay: 3 });

const instancesOf = (reservations: { Instances?: Instance[] }[] | undefined): Instance[] => (reservations ?? []).flatMap((r) => r.Instances ?? []);

/** The exception a call rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<EC2ServiceException> {
  const outcome = await p.then(() => undefined, (err: unknown) => err);
  if (!(outcome instanceof EC2ServiceException)) throw new Error(`expected an EC2 exception, got ${outcome === undefined ? "success" : String(outcome)}`);
  return outcome;
}

/** Every page a paginator yields: the items' keys of each page and each page's NextToken. */
async function walk<P extends { NextToken?: string }>(pages: AsyncIterable<P>, keys: (page: P) => string[]): Promise<{ pages: string[][]; tokens: (string | undefined)[] }> {
  const out: string[][] = [];
  const tokens: (string | undefined)[] = [];
  for await (const page of pages) {
    out.push(keys(page));
    tokens.push(page.NextToken);
  }
  return { pages: out, tokens };
}

/** A paginator's walk visited exactly `all`, each once, in pages of at most `size`, and ended on a page without NextToken. */
function expectWalkedOnce(walked: { pages: string[][]; tokens: (string | undefined)[] }, all: string[], size: number): void {
  const flat = walked.pages.flat();
  expect(all.length).toBeGreaterThan(size * 2);
  expect(new Set(flat).size).toBe(flat.length);
  expect([...flat].sort()).toEqual([...all].sort());
  expect(walked.pages.length).toBe(Math.ceil(all.length / size));
  for (const page of walked.pages) expect(page.length).toBeLessThanOrEqual(size);
  // Every page but the last says where the next one starts; the last says nothing.
  expect(walked.tokens.slice(0, -1).every((t) => typeof t === "string" && t.length > 0)).toBe(true);
  expect(walked.tokens.at(-1)).toBeUndefined();
}

describe("the AWS SDK for JavaScript v3", () => {
  it("runs a whole session on a libvirt host: catalogue, images, key pair, group, RunInstances and the SDK's waiters, filters, console, addresses, tags, stop/start/terminate", async () => {
    const regions = await ec2.send(new DescribeRegionsCommand({}));
    expect(regions.Regions?.map((r) => r.RegionName)).toEqual(["lab-1"]);
    const zones = await ec2.send(new DescribeAvailabilityZonesCommand({}));
    expect(zones.AvailabilityZones?.map((z) => [z.ZoneName, z.State, z.RegionName])).toEqual([[REAL_ZONE, "available", "lab-1"], [FAKE_ZONE, "available", "lab-1"]]);
    const images = await ec2.send(new DescribeImagesCommand({ Owners: ["self"] }));
    expect(images.Images?.find((i) => i.ImageId === imageId)).toMatchObject({ Name: `sdk-${stack.runId}`, State: "available", OwnerId: stack.defaultAccountId });

    const key = await ec2.send(new CreateKeyPairCommand({ KeyName: "sdk-session" }));
    expect(key.KeyPairId).toMatch(/^key-[0-9a-f]{17}$/);
    expect(key.KeyMaterial).toContain("-----BEGIN");
    const { GroupId: groupId } = await ec2.send(new CreateSecurityGroupCommand({ GroupName: "sdk-session", Description: "SDK session" }));
    expect(groupId).toMatch(/^sg-/);
    const authorized = await ec2.send(new AuthorizeSecurityGroupIngressCommand({
      GroupId: groupId, IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "10.0.0.0/8" }] }],
    }));
    expect(authorized.Return).toBe(true);
    const [group] = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId!] }))).SecurityGroups ?? [];
    expect(group?.IpPermissions).toEqual([{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "10.0.0.0/8" }], UserIdGroupPairs: [] }]);

    const userData = "#!/bin/sh\necho sdk-session-user-data\n";
    const run = await ec2.send(new RunInstancesCommand({
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 2, KeyName: "sdk-session", SecurityGroupIds: [groupId!],
      Placement: { AvailabilityZone: REAL_ZONE }, UserData: Buffer.from(userData).toString("base64"),
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "sdk-session" }] }],
    }));
    const ids = (run.Instances ?? []).map((i) => i.InstanceId!);
    expect(ids).toHaveLength(2);
    expect(run.Instances?.map((i) => [i.State?.Name, i.KeyName, i.Tags])).toEqual(ids.map(() => ["pending", "sdk-session", [{ Key: "Name", Value: "sdk-session" }]]));

    // TCG boots are slow; the waiter's own failure states (shutting-down, terminated, stopping) end it early.
    await waitUntilInstanceRunning(waiter(300), { InstanceIds: ids });
    // Real guests: libvirt has a domain for each.
    for (const id of ids) expect(stack.domState(id)).toBe("running");
    const running = await ec2.send(new DescribeInstancesCommand({
      Filters: [{ Name: "tag:Name", Values: ["sdk-session"] }, { Name: "instance-state-name", Values: ["running"] }],
    }));
    expect(instancesOf(running.Reservations).map((i) => i.InstanceId).sort()).toEqual([...ids].sort());
    const none = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:Name", Values: ["sdk-session"] }, { Name: "instance-state-name", Values: ["stopped"] }] }));
    expect(none.Reservations).toEqual([]);

    // The guest writes its boot line to the serial console once its init runs.
    const boot = await waitUntil(`the boot line on ${ids[0]}'s console`, async () => {
      const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: ids[0] }));
      const text = Buffer.from(out.Output ?? "", "base64").toString("utf8");
      return text.includes(`CIRRUS-BOOT instance-id=${ids[0]}`) && { out, text };
    }, 240_000, 2_000);
    expect(boot.out.InstanceId).toBe(ids[0]);

    const address = await ec2.send(new AllocateAddressCommand({ Domain: "vpc" }));
    expect(address.AllocationId).toMatch(/^eipalloc-/);
    const { AssociationId: associationId } = await ec2.send(new AssociateAddressCommand({ AllocationId: address.AllocationId, InstanceId: ids[0] }));
    expect(associationId).toMatch(/^eipassoc-/);
    expect((await ec2.send(new DescribeAddressesCommand({ AllocationIds: [address.AllocationId!] }))).Addresses?.[0]).toMatchObject({ InstanceId: ids[0], AssociationId: associationId, PublicIp: address.PublicIp });
    expect(instancesOf((await ec2.send(new DescribeInstancesCommand({ InstanceIds: [ids[0]!] }))).Reservations)[0]?.PublicIpAddress).toBe(address.PublicIp);
    await ec2.send(new DisassociateAddressCommand({ AssociationId: associationId }));
    const released = (await ec2.send(new DescribeAddressesCommand({ AllocationIds: [address.AllocationId!] }))).Addresses?.[0];
    expect(released?.InstanceId).toBeUndefined();
    expect(released?.AssociationId).toBeUndefined();
    await ec2.send(new ReleaseAddressCommand({ AllocationId: address.AllocationId }));
    expect((await rejection(ec2.send(new DescribeAddressesCommand({ AllocationIds: [address.AllocationId!] })))).name).toBe("InvalidAllocationID.NotFound");

    await ec2.send(new CreateTagsCommand({ Resources: [ids[0]!], Tags: [{ Key: "env", Value: "sdk" }] }));
    const tags = await ec2.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [ids[0]!] }, { Name: "key", Values: ["env"] }] }));
    expect(tags.Tags).toEqual([{ Key: "env", ResourceId: ids[0], ResourceType: "instance", Value: "sdk" }]);

    const stop = await ec2.send(new StopInstancesCommand({ InstanceIds: [ids[0]!] }));
    expect(stop.StoppingInstances?.[0]).toMatchObject({ InstanceId: ids[0], PreviousState: { Name: "running", Code: 16 }, CurrentState: { Name: "stopping", Code: 64 } });
    await waitUntilInstanceStopped(waiter(180), { InstanceIds: [ids[0]!] });
    expect(stack.domState(ids[0]!)).toBe("shut off");
    const start = await ec2.send(new StartInstancesCommand({ InstanceIds: [ids[0]!] }));
    expect(start.StartingInstances?.[0]).toMatchObject({ PreviousState: { Name: "stopped" }, CurrentState: { Name: "pending" } });
    await waitUntilInstanceRunning(waiter(300), { InstanceIds: [ids[0]!] });
    const terminate = await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    expect(terminate.TerminatingInstances?.map((c) => c.CurrentState?.Name)).toEqual(["shutting-down", "shutting-down"]);
    await waitUntilInstanceTerminated(waiter(180), { InstanceIds: ids });
    // Terminated only once the host confirmed the guest is gone.
    for (const id of ids) expect(stack.domState(id)).toBe("absent");
  }, 900_000);

  it("RunInstances with DryRun answers DryRunOperation (HTTP 412) and launches nothing", async () => {
    const count = async () => instancesOf((await ec2.send(new DescribeInstancesCommand({}))).Reservations).length;
    const before = await count();
    const err = await rejection(ec2.send(new RunInstancesCommand({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, SubnetId: fakeSubnetId, DryRun: true })));
    expect(err.name).toBe("DryRunOperation");
    expect(err.$metadata.httpStatusCode).toBe(412);
    expect(err.message).toBe("Request would have succeeded, but DryRun flag is set.");
    expect(await count()).toBe(before);
    // A dry run that would fail answers the real failure, not DryRunOperation.
    const bad = await rejection(ec2.send(new RunInstancesCommand({ ImageId: "ami-0123456789abcdef0", MinCount: 1, MaxCount: 1, DryRun: true })));
    expect(bad.name).toBe("InvalidAMIID.NotFound");
  });

  it("an error is the SDK's typed exception: name is EC2's code, HTTP 400, with the request id", async () => {
    const missing = "i-0123456789abcdef0";
    const err = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: [missing] })));
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect(err.$fault).toBe("client");
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(err.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(err.message).toContain(missing);
    const malformed = await rejection(ec2.send(new TerminateInstancesCommand({ InstanceIds: ["i-nope"] })));
    expect([malformed.name, malformed.$metadata.httpStatusCode]).toEqual(["InvalidInstanceID.Malformed", 400]);
  });

  it("STS GetCallerIdentity at the same endpoint names the signing account", async () => {
    const sts = new STSClient({ endpoint: stack.queryEndpoint, region: "lab-1", credentials: stack.key });
    try {
      const me = await sts.send(new GetCallerIdentityCommand({}));
      expect(me).toMatchObject({ Account: stack.defaultAccountId, Arn: `arn:aws:iam::${stack.defaultAccountId}:root`, UserId: stack.defaultAccountId });
    } finally {
      sts.destroy();
    }
  });

  describe("the SDK's paginators (MaxResults 5) visit every item exactly once and end", () => {
    const PAGE = 5;
    let pageIds: string[] = [];

    beforeAll(async () => {
      // Twelve instances on the fake host: more than two pages of five.
      const run = await ec2.send(new RunInstancesCommand({
        ImageId: imageId, InstanceType: "t2.nano", MinCount: 12, MaxCount: 12, SubnetId: fakeSubnetId,
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "paged" }, { Key: "batch", Value: "one" }] }],
      }));
      pageIds = (run.Instances ?? []).map((i) => i.InstanceId!);
      expect(pageIds).toHaveLength(12);
    });

    it("paginateDescribeInstances", async () => {
      const all = instancesOf((await ec2.send(new DescribeInstancesCommand({}))).Reservations).map((i) => i.InstanceId!);
      expect(all).toEqual(expect.arrayContaining(pageIds));
      expectWalkedOnce(await walk(paginateDescribeInstances({ client: ec2, pageSize: PAGE }, {}), (p) => instancesOf(p.Reservations).map((i) => i.InstanceId!)), all, PAGE);
      // With a filter, pages hold only matches, and still end.
      const walked = await walk(paginateDescribeInstances({ client: ec2, pageSize: PAGE }, { Filters: [{ Name: "instance-type", Values: ["t2.nano"] }, { Name: "availability-zone", Values: [FAKE_ZONE] }] }),
        (p) => instancesOf(p.Reservations).map((i) => i.InstanceId!));
      expectWalkedOnce(walked, pageIds, PAGE);
    });

    it("paginateDescribeSecurityGroups", async () => {
      for (let i = 0; i < 11; i++) await ec2.send(new CreateSecurityGroupCommand({ GroupName: `paged-${i}`, Description: "paged" }));
      const all = ((await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? []).map((g) => g.GroupId!);
      expectWalkedOnce(await walk(paginateDescribeSecurityGroups({ client: ec2, pageSize: PAGE }, {}), (p) => (p.SecurityGroups ?? []).map((g) => g.GroupId!)), all, PAGE);
    });

    it("paginateDescribeTags", async () => {
      const key = (t: { ResourceId?: string; Key?: string }) => `${t.ResourceId}/${t.Key}`;
      const all = ((await ec2.send(new DescribeTagsCommand({}))).Tags ?? []).map(key);
      // Two tags on each of the twelve: pages end inside one resource's tags too.
      expect(all).toEqual(expect.arrayContaining(pageIds.flatMap((id) => [`${id}/Name`, `${id}/batch`])));
      expectWalkedOnce(await walk(paginateDescribeTags({ client: ec2, pageSize: PAGE }, {}), (p) => (p.Tags ?? []).map(key)), all, PAGE);
    });

    it("paginateDescribeImages", async () => {
      for (let i = 0; i < 11; i++) await stack.registerTestImage(`paged-${i}-${stack.runId}`);
      const all = ((await ec2.send(new DescribeImagesCommand({ Owners: ["self"] }))).Images ?? []).map((i) => i.ImageId!);
      expectWalkedOnce(await walk(paginateDescribeImages({ client: ec2, pageSize: PAGE }, { Owners: ["self"] }), (p) => (p.Images ?? []).map((i) => i.ImageId!)), all, PAGE);
    });

    it("DescribeInstances refuses InstanceIds with MaxResults (InvalidParameterCombination), as EC2 does", async () => {
      const err = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: [pageIds[0]!], MaxResults: PAGE })));
      expect([err.name, err.$metadata.httpStatusCode]).toEqual(["InvalidParameterCombination", 400]);
      // So the SDK's paginator, which sends MaxResults, refuses ids as well.
      const viaPaginator = await rejection(walk(paginateDescribeInstances({ client: ec2, pageSize: PAGE }, { InstanceIds: [pageIds[0]!] }), () => []));
      expect(viaPaginator.name).toBe("InvalidParameterCombination");
    });
  });
});
