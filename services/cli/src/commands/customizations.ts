// Where the `cirrus` CLI departs from the plain derivation (derive.ts), each
// because the aws CLI does too (awscli/customizations/ec2/…), or because
// Cirrus adds something the aws CLI offers as a separate command:
//   - run-instances: --count N|MIN:MAX instead of --min-count/--max-count, and
//     --user-data as text or a file that the CLI base64-encodes;
//   - authorize/revoke-security-group-*: --protocol/--port/--cidr/
//     --source-group/--group-owner instead of the flat IpProtocol, FromPort,
//     ToPort and CidrIp members;
//   - get-console-output: the output decoded from base64;
//   - --wait on the commands that change an instance's state (the aws CLI
//     has `aws ec2 wait …`, which Cirrus has too as `cirrus wait`; waiters.ts);
//   - --output table: Cirrus's compact one-row-per-resource views;
//   - the same for the volume and snapshot commands, and copy-snapshot's
//     DestinationRegion, in storage.ts.
import type { compute } from "@cirrus/proto";
import type { AnyCommandSpec, WaitSpec } from "../command.js";
import { SIMPLE_RULE_PARAMS, simpleRule } from "../ipPermissions.js";
import { grid, type Columns, type Grid, type JsonObject } from "../output.js";
import type { ParamSpec } from "../params.js";
import type { Waiter } from "../wait.js";
import { observeInstances, WAITERS, type Seen as SeenResource } from "./waiters.js";

export interface Customization {
  /** Request members the aws CLI offers no option for (it offers `params` instead). */
  hide?: string[];
  /** Options the aws CLI adds; `prepare` turns them into request members. */
  params?: ParamSpec[];
  /** Member → how its option is read and described, where the aws CLI reads it differently from the member's type. */
  options?: Record<string, Pick<ParamSpec, "kind" | "description">>;
  /** The response list to print, where the response has several. */
  listKey?: string;
  prepare?: AnyCommandSpec["prepare"];
  table?: (response: any) => Grid;
  present?: (json: JsonObject) => JsonObject;
  raw?: (response: any) => string;
  wait?: WaitSpec<any, any, any>;
}

/** A resource's Name tag, the name people know it by. */
export const nameTag = (tags: readonly compute.Tag[]) => tags.find((t) => t.Key === "Name")?.Value;

export const INSTANCE_COLUMNS: Columns<compute.Instance> = {
  InstanceId: (i) => i.InstanceId,
  State: (i) => i.State?.Name,
  InstanceType: (i) => i.InstanceType,
  ImageId: (i) => i.ImageId,
  AvailabilityZone: (i) => i.Placement?.AvailabilityZone,
  PrivateIpAddress: (i) => i.PrivateIpAddress,
  PublicIpAddress: (i) => i.PublicIpAddress,
  LaunchTime: (i) => i.LaunchTime,
  Name: (i) => nameTag(i.Tags),
};

const STATE_CHANGE_COLUMNS: Columns<compute.InstanceStateChange> = {
  InstanceId: (c) => c.InstanceId,
  PreviousState: (c) => c.PreviousState?.Name,
  CurrentState: (c) => c.CurrentState?.Name,
};

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

/** One rule in a table cell: `tcp 22 10.0.0.0/8,sg-…`; `all` for protocol -1. */
export function ruleSummary(p: compute.IpPermission): string {
  const protocol = p.IpProtocol === "-1" ? "all" : p.IpProtocol;
  const ports = p.FromPort === undefined || p.FromPort === -1 ? "" : p.FromPort === p.ToPort ? ` ${p.FromPort}` : ` ${p.FromPort}-${p.ToPort}`;
  const sources = [...p.IpRanges.map((r) => r.CidrIp), ...p.UserIdGroupPairs.map((g) => g.GroupId)].join(",");
  return `${protocol}${ports}${sources ? ` ${sources}` : ""}`;
}

// ---- --wait on the instance commands ----

type Seen = SeenResource<compute.Instance>;

type StateChanges = Record<string, compute.InstanceStateChange[]>;

/** Start/stop/terminate: wait with `waiter`, print the same shape with the states reached. */
function stateChange(listKey: string, waiter: Waiter): Customization {
  return {
    table: (res: StateChanges) => grid(res[listKey]!, STATE_CHANGE_COLUMNS),
    wait: {
      waiter,
      ids: (_req: unknown, res: StateChanges) => res[listKey]!.map((c) => c.InstanceId),
      observe: observeInstances,
      finalize: (res: StateChanges, seen: ReadonlyMap<string, Seen>) => ({
        ...res,
        [listKey]: res[listKey]!.map((c) => {
          const state = seen.get(c.InstanceId)?.resource.State;
          return state ? { ...c, CurrentState: state } : c;
        }),
      }),
    } satisfies WaitSpec<unknown, StateChanges, Seen>,
  };
}

function decodeBase64(text: string): string {
  return Buffer.from(text, "base64").toString("utf8");
}

/** Options of the authorize/revoke commands: the aws CLI's single-rule shortcut instead of the flat members. */
const RULE_SHORTCUT: Customization = { hide: ["IpProtocol", "FromPort", "ToPort", "CidrIp"], params: SIMPLE_RULE_PARAMS, prepare: simpleRule };

/** Customizations by command name. */
export const CUSTOMIZATIONS: Record<string, Customization> = {
  "run-instances": {
    hide: ["MinCount", "MaxCount"],
    params: [{ flag: "count", kind: "count", description: "N instances, or MIN:MAX (at least MIN, up to MAX)", defaultValue: "1" }],
    options: { UserData: { kind: "blob", description: "user data text, or file://path (the CLI base64-encodes it; at most 16 KiB)" } },
    listKey: "Instances",
    table: (res: compute.Reservation) => grid(res.Instances, INSTANCE_COLUMNS),
    wait: {
      waiter: WAITERS["instance-running"],
      ids: (_req: unknown, res: compute.Reservation) => res.Instances.map((i) => i.InstanceId),
      observe: observeInstances,
      finalize: (res: compute.Reservation, seen: ReadonlyMap<string, Seen>) => ({ ...res, Instances: res.Instances.map((i) => seen.get(i.InstanceId)?.resource ?? i) }),
    } satisfies WaitSpec<unknown, compute.Reservation, Seen>,
  },
  "describe-instances": { table: (res: compute.DescribeInstancesResponse) => grid(res.Reservations.flatMap((r) => r.Instances), INSTANCE_COLUMNS) },
  "start-instances": stateChange("StartingInstances", WAITERS["instance-running"]),
  "stop-instances": stateChange("StoppingInstances", WAITERS["instance-stopped"]),
  "terminate-instances": stateChange("TerminatingInstances", WAITERS["instance-terminated"]),
  "reboot-instances": {
    wait: {
      waiter: WAITERS["instance-running"],
      // The response is empty, so the instances are the ones asked for.
      ids: (req: compute.RebootInstancesRequest) => req.InstanceIds,
      observe: observeInstances,
      finalize: (res: compute.RebootInstancesResponse) => res,
    } satisfies WaitSpec<compute.RebootInstancesRequest, compute.RebootInstancesResponse, Seen>,
  },
  "get-console-output": {
    // The API returns base64, as EC2 does; the aws CLI prints it decoded.
    present: (json) => (typeof json.Output === "string" ? { ...json, Output: decodeBase64(json.Output) } : json),
    raw: (res: compute.GetConsoleOutputResponse) => decodeBase64(res.Output),
  },
  "describe-images": {
    table: (res: compute.DescribeImagesResponse) =>
      grid(res.Images, {
        ImageId: (i) => i.ImageId,
        Name: (i) => i.Name,
        State: (i) => i.State,
        Architecture: (i) => i.Architecture,
        RootDeviceName: (i) => i.RootDeviceName,
        CreationDate: (i) => i.CreationDate,
      }),
  },
  "describe-key-pairs": {
    table: (res: compute.DescribeKeyPairsResponse) =>
      grid(res.KeyPairs, {
        KeyPairId: (k) => k.KeyPairId,
        KeyName: (k) => k.KeyName,
        KeyType: (k) => k.KeyType,
        KeyFingerprint: (k) => k.KeyFingerprint,
        CreateTime: (k) => k.CreateTime,
      }),
  },
  "create-vpc": { table: (res: compute.CreateVpcResponse) => grid(res.Vpc ? [res.Vpc] : [], VPC_COLUMNS) },
  "describe-vpcs": { table: (res: compute.DescribeVpcsResponse) => grid(res.Vpcs, VPC_COLUMNS) },
  "create-subnet": { table: (res: compute.CreateSubnetResponse) => grid(res.Subnet ? [res.Subnet] : [], SUBNET_COLUMNS) },
  "describe-subnets": { table: (res: compute.DescribeSubnetsResponse) => grid(res.Subnets, SUBNET_COLUMNS) },
  "describe-security-groups": {
    table: (res: compute.DescribeSecurityGroupsResponse) =>
      grid(res.SecurityGroups, {
        GroupId: (g) => g.GroupId,
        GroupName: (g) => g.GroupName,
        VpcId: (g) => g.VpcId,
        Ingress: (g) => g.IpPermissions.map(ruleSummary).join("; "),
        Egress: (g) => g.IpPermissionsEgress.map(ruleSummary).join("; "),
        Name: (g) => nameTag(g.Tags),
      }),
  },
  "authorize-security-group-ingress": RULE_SHORTCUT,
  "authorize-security-group-egress": RULE_SHORTCUT,
  "revoke-security-group-ingress": RULE_SHORTCUT,
  "revoke-security-group-egress": RULE_SHORTCUT,
  "describe-addresses": {
    table: (res: compute.DescribeAddressesResponse) =>
      grid(res.Addresses, {
        PublicIp: (a) => a.PublicIp,
        AllocationId: (a) => a.AllocationId,
        AssociationId: (a) => a.AssociationId,
        InstanceId: (a) => a.InstanceId,
        PrivateIpAddress: (a) => a.PrivateIpAddress,
        Domain: (a) => a.Domain,
      }),
  },
  "describe-instance-types": {
    table: (res: compute.DescribeInstanceTypesResponse) =>
      grid(res.InstanceTypes, {
        InstanceType: (t) => t.InstanceType,
        VCpus: (t) => t.VCpuInfo?.DefaultVCpus,
        MemoryMiB: (t) => t.MemoryInfo?.SizeInMiB,
        Architectures: (t) => t.ProcessorInfo?.SupportedArchitectures.join(","),
      }),
  },
  "describe-availability-zones": {
    table: (res: compute.DescribeAvailabilityZonesResponse) =>
      grid(res.AvailabilityZones, { ZoneName: (z) => z.ZoneName, ZoneId: (z) => z.ZoneId, State: (z) => z.State, RegionName: (z) => z.RegionName }),
  },
  "describe-regions": {
    table: (res: compute.DescribeRegionsResponse) =>
      grid(res.Regions, { RegionName: (r) => r.RegionName, Endpoint: (r) => r.Endpoint, OptInStatus: (r) => r.OptInStatus }),
  },
};
