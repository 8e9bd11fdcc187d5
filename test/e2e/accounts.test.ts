// Two accounts never see or touch each other's resources. Account A (the
// stack's default) owns one resource of every kind; account B (made with
// cirrus-admin) calls every action of the API over the Query API with its own
// signed EC2Client, naming A's resources. B must get exactly the answer it
// gets for ids nobody has (so it cannot even learn that they exist), its
// Describe calls must list none of A's resources, what it creates stays in
// its own account, and afterwards A's resources are exactly as they were.
// The table is driven by the compute API's descriptors: an action without a
// row fails, so every action added later must say what B gets from it.
import { randomBytes } from "node:crypto";
import * as sdk from "@aws-sdk/client-ec2";
import { EC2Client, EC2ServiceException, waitUntilInstanceRunning, waitUntilSnapshotCompleted, waitUntilVolumeAvailable, waitUntilVolumeInUse } from "@aws-sdk/client-ec2";
import type { AccessKey } from "@cirrus/common";
import { computeDescriptors, EC2_ERROR_CODE_METADATA_KEY } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "../src/stack.js";

const stack = new Stack();
const ACTIONS = Object.keys(computeDescriptors.methods);

/** The ids a request can name: one resource of each kind, and the names and addresses that stand for one. */
interface Ids {
  account: string;
  instance: string;
  image: string;
  keyPairId: string;
  keyName: string;
  vpc: string;
  subnet: string;
  group: string;
  groupName: string;
  allocation: string;
  association: string;
  publicIp: string;
  privateIp: string;
  ingressRule: string;
  egressRule: string;
  /** A volume attached to the instance, and a snapshot of it. */
  volume: string;
  snapshot: string;
}

let a: EC2Client;
let b: EC2Client;
let keyB: AccessKey;
/** A's resources. */
const A = {} as Ids;
/** B's own resources, which some requests name beside A's. */
const B = {} as Ids;
/** Ids of the same form as A's that nobody has. */
const NOBODY = {} as Ids;
/** Every id A's Describe calls answer (A's default VPC, subnet and group too). */
let idsOfA = new Set<string>();
let snapshotBefore: unknown;

const hex17 = () => randomBytes(9).toString("hex").slice(0, 17);

/** An action's command class from the SDK, by EC2 action name. */
function commandOf(action: string): new (input: object) => any {
  const Command = (sdk as unknown as Record<string, new (input: object) => any>)[`${action}Command`];
  if (!Command) throw new Error(`the SDK has no ${action}Command`);
  return Command;
}

/** Calls `action` through `client`; resolves with the output (without $metadata), rejects as the SDK does. */
async function send(client: EC2Client, action: string, input: object = {}): Promise<any> {
  const { $metadata: _, ...output } = await client.send(new (commandOf(action))(input));
  return output;
}

interface Answer {
  code: string;
  status?: number;
  message?: string;
  output?: unknown;
}

/** What `action` answers: "ok" with its output, or the EC2 error's code, HTTP status and message. */
async function answer(client: EC2Client, action: string, input: object): Promise<Answer> {
  try {
    return { code: "ok", output: await send(client, action, input) };
  } catch (err) {
    if (!(err instanceof EC2ServiceException)) throw err;
    return { code: err.name, status: err.$metadata.httpStatusCode, message: err.message };
  }
}

/** An answer with the ids of `ids` written as their names, so answers about different ids compare equal when nothing else differs. */
function neutral(ans: Answer, ids: Ids): Answer {
  let text = JSON.stringify(ans);
  for (const [name, value] of Object.entries(ids) as [string, string][]) text = text.split(value).join(`<${name}>`);
  return JSON.parse(text) as Answer;
}

/** Everything A's Describe calls answer, as A sees it. */
async function snapshotOfA(): Promise<Record<string, any>> {
  const [instances, images, keyPairs, vpcs, subnets, groups, addresses, tags, volumes, snapshots, sharing] = await Promise.all([
    send(a, "DescribeInstances"), send(a, "DescribeImages", { Owners: ["self"] }), send(a, "DescribeKeyPairs", { IncludePublicKey: true }),
    send(a, "DescribeVpcs"), send(a, "DescribeSubnets"), send(a, "DescribeSecurityGroups"), send(a, "DescribeAddresses"), send(a, "DescribeTags"),
    send(a, "DescribeVolumes"), send(a, "DescribeSnapshots", { OwnerIds: ["self"] }), send(a, "DescribeSnapshotAttribute", { SnapshotId: A.snapshot, Attribute: "createVolumePermission" }),
  ]);
  return { instances, images, keyPairs, vpcs, subnets, groups, addresses, tags, volumes, snapshots, sharing };
}

/** The ids in a Describe answer (any member named like an id, at any depth). */
function idsIn(value: unknown): string[] {
  const out: string[] = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (typeof x === "string" && /(InstanceId|ImageId|KeyPairId|VpcId|SubnetId|GroupId|AllocationId|AssociationId|ResourceId|SecurityGroupRuleId|VolumeId|SnapshotId)$/.test(k)) out.push(x);
        else visit(x);
      }
    }
  };
  visit(value);
  return out;
}

/** One of B's requests that names A's resources (from `ids`, or B's own from `mine`), and the code it must get. */
interface Foreign {
  why: string;
  input: (ids: Ids, mine: Ids) => object;
  /** EC2's error code, or "ok" where the same request about an unknown id succeeds too (a filter, DeleteKeyPair by name). */
  code: string;
}

interface Row {
  foreign?: Foreign[];
  /** Describe actions: what B lists holds none of A's ids, and `mustList` of B's own. */
  lists?: { input?: object; mustList: () => string[] };
  /** B's own side: what B makes (or reads of its account) is B's; A sees none of it. */
  own?: () => Promise<void>;
  /** What the cloud offers: the same answer for A and B. */
  catalogue?: object;
}

const launch = (_ids: Ids, mine: Ids, extra: object = {}) => ({ ImageId: mine.image, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, ...extra });
const cidrRule = (port: number) => [{ IpProtocol: "tcp", FromPort: port, ToPort: port, IpRanges: [{ CidrIp: "10.0.0.0/8" }] }];
/** CreateTags/DeleteTags on each of A's resource kinds: each kind's NotFound. */
const tagEveryKind = (tags: object[]): Foreign[] => ([
  ["instance", "InvalidInstanceID.NotFound"], ["image", "InvalidAMIID.NotFound"], ["keyPairId", "InvalidKeyPair.NotFound"], ["vpc", "InvalidVpcID.NotFound"],
  ["subnet", "InvalidSubnetID.NotFound"], ["group", "InvalidGroup.NotFound"], ["allocation", "InvalidAllocationID.NotFound"],
  ["volume", "InvalidVolume.NotFound"], ["snapshot", "InvalidSnapshot.NotFound"],
] as const).map(([kind, code]) => ({ why: `A's ${kind}`, input: (ids: Ids) => ({ Resources: [ids[kind]], Tags: tags }), code }));

/** A sees no resource with that id (its kind's NotFound) and none in its list. */
async function expectInvisibleToA(action: string, input: object, code: string, id: string): Promise<void> {
  expect((await answer(a, action, input)).code).toBe(code);
  expect(idsIn(await send(a, action, {}))).not.toContain(id);
}

const ROWS: Record<string, Row> = {
  RunInstances: {
    foreign: [
      { why: "A's private image", input: (ids, mine) => launch(ids, mine, { ImageId: ids.image }), code: "InvalidAMIID.NotFound" },
      { why: "A's subnet", input: (ids, mine) => launch(ids, mine, { SubnetId: ids.subnet }), code: "InvalidSubnetID.NotFound" },
      { why: "A's security group", input: (ids, mine) => launch(ids, mine, { SecurityGroupIds: [ids.group] }), code: "InvalidGroup.NotFound" },
      { why: "A's key pair", input: (ids, mine) => launch(ids, mine, { KeyName: ids.keyName }), code: "InvalidKeyPair.NotFound" },
    ],
    own: async () => {
      const [inst] = (await send(b, "RunInstances", launch(B, B))).Instances;
      expect(inst.ImageId).toBe(B.image);
      await expectInvisibleToA("DescribeInstances", { InstanceIds: [inst.InstanceId] }, "InvalidInstanceID.NotFound", inst.InstanceId);
      await send(b, "TerminateInstances", { InstanceIds: [inst.InstanceId] });
    },
  },
  DescribeInstances: {
    foreign: [
      { why: "A's instance", input: (ids) => ({ InstanceIds: [ids.instance] }), code: "InvalidInstanceID.NotFound" },
      { why: "a filter on A's instance", input: (ids) => ({ Filters: [{ Name: "instance-id", Values: [ids.instance] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.instance] },
  },
  StartInstances: { foreign: [{ why: "A's instance", input: (ids) => ({ InstanceIds: [ids.instance] }), code: "InvalidInstanceID.NotFound" }] },
  StopInstances: { foreign: [{ why: "A's instance", input: (ids) => ({ InstanceIds: [ids.instance], Force: true }), code: "InvalidInstanceID.NotFound" }] },
  RebootInstances: { foreign: [{ why: "A's instance", input: (ids) => ({ InstanceIds: [ids.instance] }), code: "InvalidInstanceID.NotFound" }] },
  TerminateInstances: {
    foreign: [
      { why: "A's instance", input: (ids) => ({ InstanceIds: [ids.instance] }), code: "InvalidInstanceID.NotFound" },
      // All or nothing: B's own instance beside A's does not get B past the check.
      { why: "A's instance beside B's", input: (ids, mine) => ({ InstanceIds: [mine.instance, ids.instance] }), code: "InvalidInstanceID.NotFound" },
    ],
  },
  GetConsoleOutput: { foreign: [{ why: "A's instance", input: (ids) => ({ InstanceId: ids.instance }), code: "InvalidInstanceID.NotFound" }] },
  DescribeInstanceAttribute: {
    foreign: [
      { why: "A's instance's user data", input: (ids) => ({ InstanceId: ids.instance, Attribute: "userData" }), code: "InvalidInstanceID.NotFound" },
      { why: "A's instance's groups", input: (ids) => ({ InstanceId: ids.instance, Attribute: "groupSet" }), code: "InvalidInstanceID.NotFound" },
    ],
  },
  DescribeInstanceCreditSpecifications: {
    foreign: [
      { why: "A's instance", input: (ids) => ({ InstanceIds: [ids.instance] }), code: "InvalidInstanceID.NotFound" },
      { why: "A's instance beside B's", input: (ids, mine) => ({ InstanceIds: [mine.instance, ids.instance] }), code: "InvalidInstanceID.NotFound" },
      { why: "a filter on A's instance", input: (ids) => ({ Filters: [{ Name: "instance-id", Values: [ids.instance] }] }), code: "ok" },
    ],
    // Without ids only unlimited-credit instances are listed, and t2 is standard: B's own are named.
    lists: { input: {}, mustList: () => [] },
    own: async () => {
      expect((await send(b, "DescribeInstanceCreditSpecifications", { InstanceIds: [B.instance] })).InstanceCreditSpecifications).toEqual([{ InstanceId: B.instance, CpuCredits: "standard" }]);
    },
  },
  RegisterImage: {
    own: async () => {
      // Image names are per account: B may use A's.
      const [image] = (await send(a, "DescribeImages", { ImageIds: [A.image] })).Images;
      const { ImageId } = await send(b, "RegisterImage", { Name: image.Name, ImageLocation: image.ImageLocation, BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 1 } }] });
      await expectInvisibleToA("DescribeImages", { ImageIds: [ImageId] }, "InvalidAMIID.NotFound", ImageId);
      expect(idsIn(await send(a, "DescribeImages", { Owners: [B.account] }))).toEqual([]);
      await send(b, "DeregisterImage", { ImageId });
    },
  },
  DescribeImages: {
    foreign: [
      { why: "A's private image", input: (ids) => ({ ImageIds: [ids.image] }), code: "InvalidAMIID.NotFound" },
      { why: "A as the owner", input: (ids) => ({ Owners: [ids.account] }), code: "ok" },
      { why: "a filter on A's image", input: (ids) => ({ Filters: [{ Name: "image-id", Values: [ids.image] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.image] },
  },
  DeregisterImage: { foreign: [{ why: "A's image", input: (ids) => ({ ImageId: ids.image }), code: "InvalidAMIID.NotFound" }] },
  DescribeImageAttribute: {
    foreign: [
      { why: "A's image's launch permissions", input: (ids) => ({ ImageId: ids.image, Attribute: "launchPermission" }), code: "InvalidAMIID.NotFound" },
      { why: "A's image's description", input: (ids) => ({ ImageId: ids.image, Attribute: "description" }), code: "InvalidAMIID.NotFound" },
    ],
  },
  ModifyImageAttribute: {
    foreign: [
      // B cannot share A's private image with itself, nor with everyone.
      { why: "A's image, shared with B", input: (ids, mine) => ({ ImageId: ids.image, LaunchPermission: { Add: [{ UserId: mine.account }] } }), code: "InvalidAMIID.NotFound" },
      { why: "A's image, made public", input: (ids) => ({ ImageId: ids.image, LaunchPermission: { Add: [{ Group: "all" }] } }), code: "InvalidAMIID.NotFound" },
      { why: "A's image's description", input: (ids) => ({ ImageId: ids.image, Description: { Value: "B was here" } }), code: "InvalidAMIID.NotFound" },
    ],
  },
  ResetImageAttribute: { foreign: [{ why: "A's image", input: (ids) => ({ ImageId: ids.image, Attribute: "launchPermission" }), code: "InvalidAMIID.NotFound" }] },
  DescribeInstanceTypes: { catalogue: {} },
  DescribeAvailabilityZones: { catalogue: {} },
  DescribeRegions: { catalogue: {} },
  DescribeAccountAttributes: {
    // Per account: B's default VPC, not A's.
    own: async () => {
      const defaultVpc = async (client: EC2Client) => (await send(client, "DescribeAccountAttributes", { AttributeNames: ["default-vpc"] })).AccountAttributes[0].AttributeValues[0].AttributeValue;
      expect(await defaultVpc(b)).toBe(B.vpc);
      expect(await defaultVpc(a)).not.toBe(B.vpc);
      expect(idsOfA).toContain(await defaultVpc(a));
    },
  },
  CreateKeyPair: {
    own: async () => {
      // Key names are per account: B may use A's, and A's key stays the only one A has by that name.
      const key = await send(b, "CreateKeyPair", { KeyName: A.keyName });
      expect(key.KeyPairId).not.toBe(A.keyPairId);
      expect((await send(a, "DescribeKeyPairs", { KeyNames: [A.keyName] })).KeyPairs.map((k: { KeyPairId: string }) => k.KeyPairId)).toEqual([A.keyPairId]);
      await expectInvisibleToA("DescribeKeyPairs", { KeyPairIds: [key.KeyPairId] }, "InvalidKeyPair.NotFound", key.KeyPairId);
      await send(b, "DeleteKeyPair", { KeyPairId: key.KeyPairId });
    },
  },
  ImportKeyPair: {
    own: async () => {
      // The same public key may be imported by both accounts.
      const [mine] = (await send(a, "DescribeKeyPairs", { KeyPairIds: [A.keyPairId], IncludePublicKey: true })).KeyPairs;
      const key = await send(b, "ImportKeyPair", { KeyName: "imported", PublicKeyMaterial: Buffer.from(mine.PublicKey) });
      await expectInvisibleToA("DescribeKeyPairs", { KeyPairIds: [key.KeyPairId] }, "InvalidKeyPair.NotFound", key.KeyPairId);
      await send(b, "DeleteKeyPair", { KeyPairId: key.KeyPairId });
    },
  },
  DescribeKeyPairs: {
    foreign: [
      { why: "A's key pair by id", input: (ids) => ({ KeyPairIds: [ids.keyPairId] }), code: "InvalidKeyPair.NotFound" },
      { why: "A's key pair by name", input: (ids) => ({ KeyNames: [ids.keyName] }), code: "InvalidKeyPair.NotFound" },
      { why: "a filter on A's key pair", input: (ids) => ({ Filters: [{ Name: "key-pair-id", Values: [ids.keyPairId] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.keyPairId] },
  },
  DeleteKeyPair: {
    foreign: [
      { why: "A's key pair by id", input: (ids) => ({ KeyPairId: ids.keyPairId }), code: "InvalidKeyPair.NotFound" },
      // EC2 answers success for a name that does not exist; A's key stays (checked at the end).
      { why: "A's key pair by name", input: (ids) => ({ KeyName: ids.keyName }), code: "ok" },
    ],
  },
  CreateVpc: {
    own: async () => {
      // The same CIDR as A's VPC: address spaces are per account.
      const { Vpc } = await send(b, "CreateVpc", { CidrBlock: "10.250.0.0/16" });
      expect(Vpc.OwnerId).toBe(B.account);
      await expectInvisibleToA("DescribeVpcs", { VpcIds: [Vpc.VpcId] }, "InvalidVpcID.NotFound", Vpc.VpcId);
      await send(b, "DeleteVpc", { VpcId: Vpc.VpcId });
    },
  },
  DescribeVpcs: {
    foreign: [
      { why: "A's VPC", input: (ids) => ({ VpcIds: [ids.vpc] }), code: "InvalidVpcID.NotFound" },
      { why: "a filter on A's VPC", input: (ids) => ({ Filters: [{ Name: "vpc-id", Values: [ids.vpc] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.vpc] },
  },
  DeleteVpc: { foreign: [{ why: "A's VPC", input: (ids) => ({ VpcId: ids.vpc }), code: "InvalidVpcID.NotFound" }] },
  DescribeVpcAttribute: { foreign: [{ why: "A's VPC", input: (ids) => ({ VpcId: ids.vpc, Attribute: "enableDnsSupport" }), code: "InvalidVpcID.NotFound" }] },
  CreateSubnet: {
    foreign: [{ why: "A's VPC", input: (ids) => ({ VpcId: ids.vpc, CidrBlock: "10.250.2.0/24" }), code: "InvalidVpcID.NotFound" }],
    own: async () => {
      const { Vpc } = await send(b, "CreateVpc", { CidrBlock: "10.250.0.0/16" });
      // A's subnet's very CIDR, in B's own VPC.
      const { Subnet } = await send(b, "CreateSubnet", { VpcId: Vpc.VpcId, CidrBlock: "10.250.1.0/24" });
      await expectInvisibleToA("DescribeSubnets", { SubnetIds: [Subnet.SubnetId] }, "InvalidSubnetID.NotFound", Subnet.SubnetId);
      await send(b, "DeleteSubnet", { SubnetId: Subnet.SubnetId });
      await send(b, "DeleteVpc", { VpcId: Vpc.VpcId });
    },
  },
  DescribeSubnets: {
    foreign: [
      { why: "A's subnet", input: (ids) => ({ SubnetIds: [ids.subnet] }), code: "InvalidSubnetID.NotFound" },
      { why: "a filter on A's VPC", input: (ids) => ({ Filters: [{ Name: "vpc-id", Values: [ids.vpc] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.subnet] },
  },
  DeleteSubnet: { foreign: [{ why: "A's subnet", input: (ids) => ({ SubnetId: ids.subnet }), code: "InvalidSubnetID.NotFound" }] },
  CreateSecurityGroup: {
    foreign: [{ why: "A's VPC", input: (ids) => ({ GroupName: "in-a", Description: "x", VpcId: ids.vpc }), code: "InvalidVpcID.NotFound" }],
    own: async () => {
      // Group names are per VPC: B's default VPC may have one named as A's.
      const { GroupId } = await send(b, "CreateSecurityGroup", { GroupName: A.groupName, Description: "B's" });
      await expectInvisibleToA("DescribeSecurityGroups", { GroupIds: [GroupId] }, "InvalidGroup.NotFound", GroupId);
      await send(b, "DeleteSecurityGroup", { GroupId });
    },
  },
  DeleteSecurityGroup: {
    foreign: [
      { why: "A's group by id", input: (ids) => ({ GroupId: ids.group }), code: "InvalidGroup.NotFound" },
      { why: "A's group by name", input: (ids) => ({ GroupName: ids.groupName }), code: "InvalidGroup.NotFound" },
    ],
  },
  DescribeSecurityGroups: {
    foreign: [
      { why: "A's group by id", input: (ids) => ({ GroupIds: [ids.group] }), code: "InvalidGroup.NotFound" },
      { why: "A's group by name", input: (ids) => ({ GroupNames: [ids.groupName] }), code: "InvalidGroup.NotFound" },
      { why: "a filter on A's group", input: (ids) => ({ Filters: [{ Name: "group-id", Values: [ids.group] }] }), code: "ok" },
      { why: "a filter on A's account", input: (ids) => ({ Filters: [{ Name: "owner-id", Values: [ids.account] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.group] },
  },
  AuthorizeSecurityGroupIngress: {
    foreign: [
      { why: "A's group", input: (ids) => ({ GroupId: ids.group, IpPermissions: cidrRule(80) }), code: "InvalidGroup.NotFound" },
      // EC2 answers InvalidGroup.NotFound for another account's group as a source (without VPC peering).
      {
        why: "A's group as the source of B's rule", code: "InvalidGroup.NotFound",
        input: (ids, mine) => ({ GroupId: mine.group, IpPermissions: [{ IpProtocol: "tcp", FromPort: 80, ToPort: 80, UserIdGroupPairs: [{ GroupId: ids.group, UserId: ids.account }] }] }),
      },
    ],
  },
  AuthorizeSecurityGroupEgress: {
    foreign: [
      { why: "A's group", input: (ids) => ({ GroupId: ids.group, IpPermissions: cidrRule(80) }), code: "InvalidGroup.NotFound" },
      {
        why: "A's group as the destination of B's rule", code: "InvalidGroup.NotFound",
        input: (ids, mine) => ({ GroupId: mine.group, IpPermissions: [{ IpProtocol: "tcp", FromPort: 80, ToPort: 80, UserIdGroupPairs: [{ GroupId: ids.group, UserId: ids.account }] }] }),
      },
    ],
  },
  RevokeSecurityGroupIngress: {
    foreign: [
      { why: "A's group and its rule", input: (ids) => ({ GroupId: ids.group, IpPermissions: cidrRule(22) }), code: "InvalidGroup.NotFound" },
      { why: "A's group and its rule's id", input: (ids) => ({ GroupId: ids.group, SecurityGroupRuleIds: [ids.ingressRule] }), code: "InvalidGroup.NotFound" },
      { why: "A's rule's id on B's group", input: (ids, mine) => ({ GroupId: mine.group, SecurityGroupRuleIds: [ids.ingressRule] }), code: "InvalidPermission.NotFound" },
    ],
  },
  RevokeSecurityGroupEgress: {
    foreign: [
      { why: "A's group and its rule", input: (ids) => ({ GroupId: ids.group, IpPermissions: cidrRule(443) }), code: "InvalidGroup.NotFound" },
      { why: "A's rule's id on B's group", input: (ids, mine) => ({ GroupId: mine.group, SecurityGroupRuleIds: [ids.egressRule] }), code: "InvalidPermission.NotFound" },
    ],
  },
  ModifyInstanceAttribute: {
    foreign: [
      { why: "A's instance", input: (ids, mine) => ({ InstanceId: ids.instance, Groups: [mine.group] }), code: "InvalidInstanceID.NotFound" },
      { why: "A's group for B's instance", input: (ids, mine) => ({ InstanceId: mine.instance, Groups: [ids.group] }), code: "InvalidGroup.NotFound" },
    ],
  },
  AllocateAddress: {
    own: async () => {
      const { AllocationId } = await send(b, "AllocateAddress", { Domain: "vpc" });
      await expectInvisibleToA("DescribeAddresses", { AllocationIds: [AllocationId] }, "InvalidAllocationID.NotFound", AllocationId);
      await send(b, "ReleaseAddress", { AllocationId });
    },
  },
  AssociateAddress: {
    foreign: [
      { why: "A's address with B's instance", input: (ids, mine) => ({ AllocationId: ids.allocation, InstanceId: mine.instance }), code: "InvalidAllocationID.NotFound" },
      { why: "B's address with A's instance", input: (ids, mine) => ({ AllocationId: mine.allocation, InstanceId: ids.instance }), code: "InvalidInstanceID.NotFound" },
    ],
  },
  DisassociateAddress: { foreign: [{ why: "A's association", input: (ids) => ({ AssociationId: ids.association }), code: "InvalidAssociationID.NotFound" }] },
  ReleaseAddress: { foreign: [{ why: "A's address", input: (ids) => ({ AllocationId: ids.allocation }), code: "InvalidAllocationID.NotFound" }] },
  DescribeAddresses: {
    foreign: [
      { why: "A's address by allocation id", input: (ids) => ({ AllocationIds: [ids.allocation] }), code: "InvalidAllocationID.NotFound" },
      { why: "A's address by public IP", input: (ids) => ({ PublicIps: [ids.publicIp] }), code: "InvalidAddress.NotFound" },
      { why: "a filter on A's association", input: (ids) => ({ Filters: [{ Name: "association-id", Values: [ids.association] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.allocation] },
  },
  DescribeAddressesAttribute: {
    foreign: [{ why: "A's address", input: (ids) => ({ AllocationIds: [ids.allocation], Attribute: "domain-name" }), code: "InvalidAllocationID.NotFound" }],
    lists: { input: { Attribute: "domain-name" }, mustList: () => [B.allocation] },
  },
  CreateVolume: {
    foreign: [{ why: "A's snapshot", input: (ids) => ({ AvailabilityZone: "lab-1a", SnapshotId: ids.snapshot }), code: "InvalidSnapshot.NotFound" }],
    own: async () => {
      const { VolumeId } = await send(b, "CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 });
      await expectInvisibleToA("DescribeVolumes", { VolumeIds: [VolumeId] }, "InvalidVolume.NotFound", VolumeId);
    },
  },
  DescribeVolumes: {
    foreign: [
      { why: "A's volume", input: (ids) => ({ VolumeIds: [ids.volume] }), code: "InvalidVolume.NotFound" },
      { why: "a filter on A's instance", input: (ids) => ({ Filters: [{ Name: "attachment.instance-id", Values: [ids.instance] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.volume] },
  },
  DeleteVolume: { foreign: [{ why: "A's volume", input: (ids) => ({ VolumeId: ids.volume }), code: "InvalidVolume.NotFound" }] },
  AttachVolume: {
    foreign: [
      { why: "A's volume to B's instance", input: (ids, mine) => ({ VolumeId: ids.volume, InstanceId: mine.instance, Device: "/dev/sdh" }), code: "InvalidVolume.NotFound" },
      { why: "B's volume to A's instance", input: (ids, mine) => ({ VolumeId: mine.volume, InstanceId: ids.instance, Device: "/dev/sdh" }), code: "InvalidInstanceID.NotFound" },
    ],
  },
  DetachVolume: { foreign: [{ why: "A's volume", input: (ids) => ({ VolumeId: ids.volume }), code: "InvalidVolume.NotFound" }] },
  DescribeVolumeStatus: { foreign: [{ why: "A's volume", input: (ids) => ({ VolumeIds: [ids.volume] }), code: "InvalidVolume.NotFound" }], lists: { mustList: () => [B.volume] } },
  ModifyVolume: { foreign: [{ why: "A's volume", input: (ids) => ({ VolumeId: ids.volume, Size: 50 }), code: "InvalidVolume.NotFound" }] },
  DescribeVolumesModifications: { foreign: [{ why: "A's volume", input: (ids) => ({ VolumeIds: [ids.volume] }), code: "InvalidVolume.NotFound" }] },
  CreateSnapshot: {
    foreign: [{ why: "A's volume", input: (ids) => ({ VolumeId: ids.volume }), code: "InvalidVolume.NotFound" }],
    own: async () => {
      const { SnapshotId } = await send(b, "CreateSnapshot", { VolumeId: B.volume });
      await expectInvisibleToA("DescribeSnapshots", { SnapshotIds: [SnapshotId] }, "InvalidSnapshot.NotFound", SnapshotId);
    },
  },
  DescribeSnapshots: {
    foreign: [
      { why: "A's snapshot", input: (ids) => ({ SnapshotIds: [ids.snapshot] }), code: "InvalidSnapshot.NotFound" },
      { why: "A as the owner", input: (ids) => ({ OwnerIds: [ids.account] }), code: "ok" },
      { why: "a filter on A's volume", input: (ids) => ({ Filters: [{ Name: "volume-id", Values: [ids.volume] }] }), code: "ok" },
    ],
    lists: { mustList: () => [B.snapshot] },
  },
  DeleteSnapshot: { foreign: [{ why: "A's snapshot", input: (ids) => ({ SnapshotId: ids.snapshot }), code: "InvalidSnapshot.NotFound" }] },
  CopySnapshot: { foreign: [{ why: "A's snapshot", input: (ids) => ({ SourceSnapshotId: ids.snapshot, SourceRegion: "lab-1" }), code: "InvalidSnapshot.NotFound" }] },
  ModifySnapshotAttribute: {
    foreign: [
      { why: "A's snapshot, shared with B", input: (ids, mine) => ({ SnapshotId: ids.snapshot, CreateVolumePermission: { Add: [{ UserId: mine.account }] } }), code: "InvalidSnapshot.NotFound" },
      { why: "A's snapshot, made public", input: (ids) => ({ SnapshotId: ids.snapshot, Attribute: "createVolumePermission", OperationType: "add", GroupNames: ["all"] }), code: "InvalidSnapshot.NotFound" },
    ],
  },
  DescribeSnapshotAttribute: { foreign: [{ why: "A's snapshot", input: (ids) => ({ SnapshotId: ids.snapshot, Attribute: "createVolumePermission" }), code: "InvalidSnapshot.NotFound" }] },
  ResetSnapshotAttribute: { foreign: [{ why: "A's snapshot", input: (ids) => ({ SnapshotId: ids.snapshot, Attribute: "createVolumePermission" }), code: "InvalidSnapshot.NotFound" }] },
  CreateTags: {
    foreign: [
      ...tagEveryKind([{ Key: "intruder", Value: "b" }]),
      // All or nothing: B's own resource beside A's is not tagged either.
      { why: "A's instance beside B's", input: (ids, mine) => ({ Resources: [mine.instance, ids.instance], Tags: [{ Key: "intruder", Value: "b" }] }), code: "InvalidInstanceID.NotFound" },
    ],
    own: async () => {
      await send(b, "CreateTags", { Resources: [B.instance], Tags: [{ Key: "owner", Value: "b" }] });
      expect((await send(a, "DescribeTags", { Filters: [{ Name: "resource-id", Values: [B.instance] }] })).Tags).toEqual([]);
      expect((await send(b, "DescribeTags", { Filters: [{ Name: "resource-id", Values: [B.instance] }] })).Tags).toEqual([{ Key: "owner", ResourceId: B.instance, ResourceType: "instance", Value: "b" }]);
    },
  },
  DeleteTags: { foreign: tagEveryKind([{ Key: "owner" }]) },
  DescribeTags: {
    foreign: [{ why: "a filter on A's instance", input: (ids) => ({ Filters: [{ Name: "resource-id", Values: [ids.instance] }] }), code: "ok" }],
    lists: { mustList: () => [B.instance] },
  },
};

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "fake1", driver: "fake", capacity: { vcpus: 16, memoryMib: 16384, diskGib: 200 } });
  // Both accounts' default VPCs have the same range, and one host serves one copy of a range: B's instances go to a host of their own.
  await stack.addAgent({ name: "fake2", driver: "fake", capacity: { vcpus: 16, memoryMib: 16384, diskGib: 200 } });
  a = new EC2Client({ endpoint: stack.queryEndpoint, region: "lab-1", credentials: stack.key });
  const accountB = await stack.newAccount("b");
  keyB = { accessKeyId: accountB.accessKeyId, secretAccessKey: accountB.secretAccessKey };
  b = new EC2Client({ endpoint: stack.queryEndpoint, region: "lab-1", credentials: keyB });

  // A: one of every kind, tagged.
  A.account = stack.defaultAccountId;
  A.image = await stack.registerTestImage(`a-${stack.runId}`);
  A.keyName = "a-key";
  A.keyPairId = (await send(a, "CreateKeyPair", { KeyName: A.keyName })).KeyPairId;
  A.vpc = (await send(a, "CreateVpc", { CidrBlock: "10.250.0.0/16" })).Vpc.VpcId;
  A.subnet = (await send(a, "CreateSubnet", { VpcId: A.vpc, CidrBlock: "10.250.1.0/24" })).Subnet.SubnetId;
  A.groupName = "a-group";
  A.group = (await send(a, "CreateSecurityGroup", { GroupName: A.groupName, Description: "A's" })).GroupId;
  A.ingressRule = (await send(a, "AuthorizeSecurityGroupIngress", { GroupId: A.group, IpPermissions: cidrRule(22) })).SecurityGroupRules[0].SecurityGroupRuleId;
  A.egressRule = (await send(a, "AuthorizeSecurityGroupEgress", { GroupId: A.group, IpPermissions: cidrRule(443) })).SecurityGroupRules[0].SecurityGroupRuleId;
  // In A's default VPC, as B's instance will be in B's.
  const [instA] = (await send(a, "RunInstances", { ImageId: A.image, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, KeyName: A.keyName, SecurityGroupIds: [A.group] })).Instances;
  A.instance = instA.InstanceId;
  A.privateIp = instA.PrivateIpAddress;
  await waitUntilInstanceRunning({ client: a, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { InstanceIds: [A.instance] });
  const eipA = await send(a, "AllocateAddress", { Domain: "vpc" });
  A.allocation = eipA.AllocationId;
  A.publicIp = eipA.PublicIp;
  A.association = (await send(a, "AssociateAddress", { AllocationId: A.allocation, InstanceId: A.instance })).AssociationId;
  A.volume = (await send(a, "CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 })).VolumeId;
  await waitUntilVolumeAvailable({ client: a, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { VolumeIds: [A.volume] });
  await send(a, "AttachVolume", { VolumeId: A.volume, InstanceId: A.instance, Device: "/dev/sdf" });
  A.snapshot = (await send(a, "CreateSnapshot", { VolumeId: A.volume })).SnapshotId;
  await waitUntilSnapshotCompleted({ client: a, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { SnapshotIds: [A.snapshot] });
  await waitUntilVolumeInUse({ client: a, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { VolumeIds: [A.volume] });
  await send(a, "CreateTags", { Resources: [A.instance, A.image, A.keyPairId, A.vpc, A.subnet, A.group, A.allocation, A.volume, A.snapshot], Tags: [{ Key: "owner", Value: "a" }] });

  // B: an image (the same files as A's, over gRPC: the Query API's RegisterImage has no kernel parameters), an instance, a group, an address.
  B.account = accountB.accountId;
  const [imageA] = (await stack.call("describeImages", { ImageIds: [A.image] })).Images;
  B.image = (await stack.call("registerImage", {
    Name: `b-${stack.runId}`, ImageLocation: imageA.ImageLocation, KernelLocation: imageA.KernelLocation, RamdiskLocation: imageA.RamdiskLocation,
    KernelCommandLine: imageA.KernelCommandLine, BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 1 } }],
  }, 60_000, keyB)).ImageId;
  B.keyName = "b-key";
  B.keyPairId = (await send(b, "CreateKeyPair", { KeyName: B.keyName })).KeyPairId;
  B.groupName = "b-group";
  B.group = (await send(b, "CreateSecurityGroup", { GroupName: B.groupName, Description: "B's" })).GroupId;
  const [instB] = (await send(b, "RunInstances", { ImageId: B.image, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, SecurityGroupIds: [B.group] })).Instances;
  B.instance = instB.InstanceId;
  B.privateIp = instB.PrivateIpAddress;
  B.vpc = instB.VpcId;
  B.subnet = instB.SubnetId;
  await waitUntilInstanceRunning({ client: b, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { InstanceIds: [B.instance] });
  const eipB = await send(b, "AllocateAddress", { Domain: "vpc" });
  B.allocation = eipB.AllocationId;
  B.publicIp = eipB.PublicIp;
  B.volume = (await send(b, "CreateVolume", { AvailabilityZone: "lab-1a", Size: 1 })).VolumeId;
  await waitUntilVolumeAvailable({ client: b, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { VolumeIds: [B.volume] });
  B.snapshot = (await send(b, "CreateSnapshot", { VolumeId: B.volume })).SnapshotId;

  // Nobody's: the same forms, never issued (a public address of the pool nobody was given).
  Object.assign(NOBODY, {
    account: String(100_000_000_000 + (randomBytes(4).readUInt32BE() % 800_000_000_000)), instance: `i-${hex17()}`, image: `ami-${hex17()}`, keyPairId: `key-${hex17()}`,
    keyName: `nobodys-key-${hex17()}`, vpc: `vpc-${hex17()}`, subnet: `subnet-${hex17()}`, group: `sg-${hex17()}`, groupName: `nobodys-group-${hex17()}`,
    allocation: `eipalloc-${hex17()}`, association: `eipassoc-${hex17()}`, publicIp: stack.addressPool.replace(/\.0\/24$/, ".200"), privateIp: "10.250.1.250",
    ingressRule: `sgr-${hex17()}`, egressRule: `sgr-${hex17()}`, volume: `vol-${hex17()}`, snapshot: `snap-${hex17()}`,
  } satisfies Ids);

  const snapshot = await snapshotOfA();
  snapshotBefore = snapshot;
  idsOfA = new Set(idsIn(snapshot));
});
afterAll(async () => {
  a?.destroy();
  b?.destroy();
  await stack.stop();
});

describe("two accounts", () => {
  it("the set-up is what the table needs: A's resources are all A's and all listed, B's are B's", () => {
    expect(B.account).toMatch(/^\d{12}$/);
    expect(B.account).not.toBe(A.account);
    // (Rule ids are not among them: DescribeSecurityGroups does not show them.)
    for (const id of [A.instance, A.image, A.keyPairId, A.vpc, A.subnet, A.group, A.allocation, A.association, A.volume, A.snapshot]) expect(idsOfA).toContain(id);
    for (const rule of [A.ingressRule, A.egressRule]) expect(rule).toMatch(/^sgr-[0-9a-f]{17}$/);
    for (const id of [B.instance, B.image, B.keyPairId, B.vpc, B.subnet, B.group, B.allocation, B.volume, B.snapshot]) expect(idsOfA).not.toContain(id);
  });

  it("every row of the table names an action of the API", () => {
    expect(Object.keys(ROWS).filter((action) => !ACTIONS.includes(action))).toEqual([]);
  });

  // One test per action of compute.proto: B's requests naming A's resources
  // answer exactly as for ids nobody has; B's Describe lists none of A's;
  // what B makes stays B's; the catalogue is the same for both.
  describe("every action, called by B", () => {
    for (const action of ACTIONS) {
      it(action, async () => {
        const row = ROWS[action];
        if (!row) throw new Error(`${action} has no row in ROWS: say what account B gets from it when it names account A's resources`);
        expect(row.foreign ?? row.lists ?? row.own ?? row.catalogue).toBeDefined();
        for (const f of row.foreign ?? []) {
          const aboutA = await answer(b, action, f.input(A, B));
          const aboutNobody = await answer(b, action, f.input(NOBODY, B));
          expect(aboutA.code, `${action} naming ${f.why}`).toBe(f.code);
          if (f.code !== "ok") expect(aboutA.status, `${action} naming ${f.why}`).toBe(400);
          // Not even the message tells A's resource from one that does not exist.
          expect(neutral(aboutA, A), `${action} naming ${f.why}, against the same request naming nobody's`).toEqual(neutral(aboutNobody, NOBODY));
        }
        if (row.lists) {
          const listed = idsIn(await send(b, action, row.lists.input ?? {}));
          expect(listed.filter((id) => idsOfA.has(id)), `${action} by B lists A's`).toEqual([]);
          expect(listed).toEqual(expect.arrayContaining(row.lists.mustList()));
        }
        if (row.own) await row.own();
        if (row.catalogue) {
          const forB = await send(b, action, row.catalogue);
          expect(forB).toEqual(await send(a, action, row.catalogue));
          expect(JSON.stringify(forB).length).toBeGreaterThan(20);
        }
      });
    }
  });

  it("over gRPC too, B's signed calls do not find A's instance and list none of A's", async () => {
    const code = (p: Promise<unknown>) => p.then(() => "ok", (e: { metadata: { get(k: string): unknown[] } }) => String(e.metadata.get(EC2_ERROR_CODE_METADATA_KEY)[0]));
    await expect(code(stack.call("terminateInstances", { InstanceIds: [A.instance] }, 60_000, keyB))).resolves.toBe("InvalidInstanceID.NotFound");
    await expect(code(stack.call("describeSecurityGroups", { GroupIds: [A.group] }, 60_000, keyB))).resolves.toBe("InvalidGroup.NotFound");
    const listed = await stack.call("describeInstances", {}, 60_000, keyB);
    const ids: string[] = listed.Reservations.flatMap((r: { Instances: { InstanceId: string }[] }) => r.Instances.map((i) => i.InstanceId));
    expect(ids).toContain(B.instance);
    expect(ids).not.toContain(A.instance);
    expect(new Set(listed.Reservations.map((r: { OwnerId: string }) => r.OwnerId))).toEqual(new Set([B.account]));
  });

  it("afterwards, A's resources are exactly as they were: states, rules, tags, associations", async () => {
    expect(await snapshotOfA()).toEqual(snapshotBefore);
    const [instance] = (await send(a, "DescribeInstances", { InstanceIds: [A.instance] })).Reservations[0].Instances;
    expect(instance).toMatchObject({ State: { Name: "running" }, PublicIpAddress: A.publicIp, Tags: [{ Key: "owner", Value: "a" }], SecurityGroups: [{ GroupId: A.group }] });
  });

  it("B's address on B's instance leaves A's association alone, though both instances have the same private address (every default VPC has the same CIDR)", async () => {
    // Both are the first instance of a default subnet of the same CIDR.
    expect(B.privateIp).toBe(A.privateIp);
    const { AssociationId } = await send(b, "AssociateAddress", { AllocationId: B.allocation, InstanceId: B.instance });
    const [mine] = (await send(b, "DescribeAddresses", { AllocationIds: [B.allocation] })).Addresses;
    expect(mine).toMatchObject({ InstanceId: B.instance, PrivateIpAddress: B.privateIp, AssociationId });
    const [theirs] = (await send(a, "DescribeAddresses", { AllocationIds: [A.allocation] })).Addresses;
    expect(theirs).toMatchObject({ InstanceId: A.instance, PrivateIpAddress: A.privateIp, AssociationId: A.association });
    const [instance] = (await send(a, "DescribeInstances", { InstanceIds: [A.instance] })).Reservations[0].Instances;
    expect(instance.PublicIpAddress).toBe(A.publicIp);
    await send(b, "DisassociateAddress", { AssociationId });
  });

  // Last: sharing changes A's image (its launch permissions), which the checks above compare.
  it("an image A shares with B (UserId) or with everyone (Group all) is B's to describe and launch, never to change; unshared it is gone for B again", async () => {
    const imagesOfB = async (input: object) => (await send(b, "DescribeImages", input)).Images.map((i: { ImageId: string }) => i.ImageId);
    const launchA = () => send(b, "RunInstances", { ImageId: A.image, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });

    await send(a, "ModifyImageAttribute", { ImageId: A.image, LaunchPermission: { Add: [{ UserId: B.account }] } });
    expect((await send(a, "DescribeImageAttribute", { ImageId: A.image, Attribute: "launchPermission" })).LaunchPermissions).toEqual([{ UserId: B.account }]);
    const [shared] = (await send(b, "DescribeImages", { ImageIds: [A.image] })).Images;
    // A's tags are A's: B sees the image without them.
    expect(shared).toMatchObject({ ImageId: A.image, OwnerId: A.account, Public: false, State: "available" });
    expect(shared.Tags ?? []).toEqual([]);
    expect(await imagesOfB({})).toEqual(expect.arrayContaining([A.image, B.image]));
    expect(await imagesOfB({ ExecutableUsers: ["self"] })).toEqual([A.image]);
    expect(await imagesOfB({ Owners: ["self"] })).not.toContain(A.image);
    expect(await imagesOfB({ Owners: [A.account] })).toEqual([A.image]);

    const [launched] = (await launchA()).Instances;
    expect(launched.ImageId).toBe(A.image);
    await waitUntilInstanceRunning({ client: b, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { InstanceIds: [launched.InstanceId] });
    // A sees neither B's instance nor any change to who may launch its image.
    expect((await answer(a, "DescribeInstances", { InstanceIds: [launched.InstanceId] })).code).toBe("InvalidInstanceID.NotFound");

    // Only the owner changes an image: for an image B sees but does not own, EC2 answers AuthFailure.
    for (const [action, input] of [
      ["ModifyImageAttribute", { ImageId: A.image, LaunchPermission: { Add: [{ Group: "all" }] } }],
      ["ResetImageAttribute", { ImageId: A.image, Attribute: "launchPermission" }],
      ["DescribeImageAttribute", { ImageId: A.image, Attribute: "launchPermission" }],
      ["DeregisterImage", { ImageId: A.image }],
    ] as const) expect((await answer(b, action, input)).code, action).toBe("AuthFailure");
    expect((await send(a, "DescribeImageAttribute", { ImageId: A.image, Attribute: "launchPermission" })).LaunchPermissions).toEqual([{ UserId: B.account }]);

    // Public: every account sees and launches it.
    await send(a, "ModifyImageAttribute", { ImageId: A.image, LaunchPermission: { Add: [{ Group: "all" }], Remove: [{ UserId: B.account }] } });
    expect((await send(b, "DescribeImages", { ImageIds: [A.image] })).Images[0].Public).toBe(true);
    expect(await imagesOfB({ ExecutableUsers: ["all"] })).toEqual([A.image]);
    expect(await imagesOfB({ ExecutableUsers: ["self"] })).toEqual([]);

    // Private again: B gets exactly what it gets for an image that does not exist; its instance keeps running.
    await send(a, "ResetImageAttribute", { ImageId: A.image, Attribute: "launchPermission" });
    expect((await send(a, "DescribeImageAttribute", { ImageId: A.image, Attribute: "launchPermission" })).LaunchPermissions ?? []).toEqual([]);
    for (const input of [(ids: Ids) => ({ ImageIds: [ids.image] }), (ids: Ids) => ({ ImageId: ids.image, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 })]) {
      const action = "ImageIds" in input(A) ? "DescribeImages" : "RunInstances";
      const aboutA = await answer(b, action, input(A));
      expect(aboutA.code, action).toBe("InvalidAMIID.NotFound");
      expect(neutral(aboutA, A)).toEqual(neutral(await answer(b, action, input(NOBODY)), NOBODY));
    }
    expect((await send(b, "DescribeInstances", { InstanceIds: [launched.InstanceId] })).Reservations[0].Instances[0].State.Name).toBe("running");
    await send(b, "TerminateInstances", { InstanceIds: [launched.InstanceId] });
  });
});
