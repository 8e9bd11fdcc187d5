// DescribeInstanceTypes, DescribeAvailabilityZones, DescribeRegions,
// DescribeAccountAttributes: what the cloud offers, served from
// configuration (and, for an account, its default VPC and the address pool).
import { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import { Ec2Error } from "./errors.js";
import { matchesFilters } from "./filters.js";
import { cpuCreditsOf } from "./instanceTypes.js";
import { defineOperation } from "./operation.js";
import { truncate } from "./validate.js";

function describeInstanceTypes(ctx: RequestContext, req: compute.DescribeInstanceTypesRequest): compute.DescribeInstanceTypesResponse {
  for (const name of req.InstanceTypes) {
    if (!ctx.instanceTypes.has(name)) throw new Ec2Error("InvalidParameterValue", `The following supplied instance types do not exist: [${truncate(name)}]`);
  }
  const types = [...ctx.instanceTypes.values()]
    .filter((t) => req.InstanceTypes.length === 0 || req.InstanceTypes.includes(t.name))
    .filter((t) => matchesFilters(req.Filters, {
      "instance-type": t.name, "vcpu-info.default-vcpus": String(t.vcpus), "memory-info.size-in-mib": String(t.memoryMib),
      "burstable-performance-supported": String(cpuCreditsOf(t.name) !== undefined),
      "instance-storage-supported": String(t.instanceStorage !== undefined),
    }));
  return {
    InstanceTypes: types.map((t) => ({
      InstanceType: t.name, CurrentGeneration: true,
      VCpuInfo: { DefaultVCpus: t.vcpus, DefaultCores: t.vcpus, DefaultThreadsPerCore: 1 },
      MemoryInfo: { SizeInMiB: t.memoryMib }, ProcessorInfo: { SupportedArchitectures: ["x86_64"] }, Hypervisor: "kvm",
      SupportedRootDeviceTypes: ["ebs"], SupportedVirtualizationTypes: ["hvm"], BurstablePerformanceSupported: cpuCreditsOf(t.name) !== undefined,
      InstanceStorageSupported: t.instanceStorage !== undefined,
      InstanceStorageInfo: t.instanceStorage && {
        TotalSizeInGB: t.instanceStorage.count * t.instanceStorage.sizeGiB, Disks: [{ SizeInGB: t.instanceStorage.sizeGiB, Count: t.instanceStorage.count, Type: "ssd" }], NvmeSupport: "unsupported",
      },
    })),
    NextToken: "",
  };
}

function describeAvailabilityZones(ctx: RequestContext, req: compute.DescribeAvailabilityZonesRequest): compute.DescribeAvailabilityZonesResponse {
  for (const z of req.ZoneNames) {
    if (!ctx.config.zones.includes(z)) throw new Ec2Error("InvalidParameterValue", `Invalid availability zone: [${truncate(z)}]`);
  }
  const zones = ctx.config.zones
    .map((z, i) => ({ ZoneName: z, ZoneId: `${ctx.config.CIRRUS_REGION}-az${i + 1}`, State: "available", RegionName: ctx.config.CIRRUS_REGION, ZoneType: "availability-zone" }))
    .filter((z) => req.ZoneNames.length === 0 || req.ZoneNames.includes(z.ZoneName))
    .filter((z) => matchesFilters(req.Filters, { "zone-name": z.ZoneName, "zone-id": z.ZoneId, state: z.State, "region-name": z.RegionName }));
  return { AvailabilityZones: zones };
}

function describeRegions(ctx: RequestContext, req: compute.DescribeRegionsRequest): compute.DescribeRegionsResponse {
  const region = ctx.config.CIRRUS_REGION;
  for (const r of req.RegionNames) {
    if (r !== region) throw new Ec2Error("InvalidParameterValue", `Invalid region: ${truncate(r)}`);
  }
  return { Regions: [{ RegionName: region, Endpoint: ctx.config.CIRRUS_API_LISTEN, OptInStatus: "opt-in-not-required" }] };
}

/** The elastic IPs there are to allocate: the operator's whole pool (Cirrus sets no limit per account). */
async function addressPoolSize(ctx: RequestContext): Promise<string[]> {
  const { rows: [pool] } = await ctx.db.query<{ n: number }>("SELECT count(*)::int AS n FROM address_pool");
  return [String(pool!.n)];
}

/**
 * Each account attribute, EC2's name → its values for the caller. Where
 * Cirrus sets no limit of its own (instances per account, security groups
 * per interface), EC2's default is answered, as EC2 itself answers
 * max-instances whatever the account's real vCPU limit.
 */
const ACCOUNT_ATTRIBUTES = new Map<string, (ctx: RequestContext) => Promise<string[]>>([
  ["supported-platforms", async () => ["VPC"]],
  ["default-vpc", async (ctx) => {
    const { rows: [vpc] } = await ctx.db.query<{ id: string }>("SELECT id FROM vpcs WHERE owner_id = $1 AND is_default", [ctx.principal.accountId]);
    return [vpc?.id ?? "none"];
  }],
  ["max-instances", async () => ["20"]],
  ["max-elastic-ips", addressPoolSize],
  ["vpc-max-elastic-ips", addressPoolSize],
  ["vpc-max-security-groups-per-interface", async () => ["5"]],
]);

/** DescribeAccountAttributes: the named attributes (each once, in the order named), or all of them. */
async function describeAccountAttributes(ctx: RequestContext, req: compute.DescribeAccountAttributesRequest): Promise<compute.DescribeAccountAttributesResponse> {
  const names = req.AttributeNames.length ? [...new Set(req.AttributeNames)] : [...ACCOUNT_ATTRIBUTES.keys()];
  for (const name of names) {
    if (!ACCOUNT_ATTRIBUTES.has(name)) throw new Ec2Error("InvalidParameterValue", `Value (${truncate(name)}) for parameter attributeName is invalid. Unknown attribute name.`);
  }
  const values = await Promise.all(names.map((name) => ACCOUNT_ATTRIBUTES.get(name)!(ctx)));
  return { AccountAttributes: names.map((name, i) => ({ AttributeName: name, AttributeValues: values[i]!.map((AttributeValue) => ({ AttributeValue })) })) };
}

export const catalogueOperations = [
  defineOperation({
    name: "DescribeInstanceTypes",
    summary: "Describe the instance types on offer",
    request: compute.DescribeInstanceTypesRequest,
    response: compute.DescribeInstanceTypesResponse,
    mutates: false,
    kinds: [],
    handler: async (ctx: RequestContext, req: compute.DescribeInstanceTypesRequest) => describeInstanceTypes(ctx, req),
  }),
  defineOperation({
    name: "DescribeAvailabilityZones",
    summary: "Describe availability zones",
    request: compute.DescribeAvailabilityZonesRequest,
    response: compute.DescribeAvailabilityZonesResponse,
    mutates: false,
    kinds: [],
    handler: async (ctx: RequestContext, req: compute.DescribeAvailabilityZonesRequest) => describeAvailabilityZones(ctx, req),
  }),
  defineOperation({
    name: "DescribeRegions",
    summary: "Describe regions",
    request: compute.DescribeRegionsRequest,
    response: compute.DescribeRegionsResponse,
    mutates: false,
    kinds: [],
    handler: async (ctx: RequestContext, req: compute.DescribeRegionsRequest) => describeRegions(ctx, req),
  }),
  defineOperation({
    name: "DescribeAccountAttributes",
    summary: "Describe your account's attributes: default-vpc, supported-platforms and limits",
    request: compute.DescribeAccountAttributesRequest,
    response: compute.DescribeAccountAttributesResponse,
    mutates: false,
    kinds: ["vpc", "address"],
    handler: describeAccountAttributes,
  }),
];
