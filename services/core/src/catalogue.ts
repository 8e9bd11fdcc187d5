// DescribeInstanceTypes, DescribeAvailabilityZones, DescribeRegions: what
// the cloud offers, served from configuration.
import { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import { Ec2Error } from "./errors.js";
import { matchesFilters } from "./filters.js";
import { defineOperation } from "./operation.js";
import { truncate } from "./validate.js";

function describeInstanceTypes(ctx: RequestContext, req: compute.DescribeInstanceTypesRequest): compute.DescribeInstanceTypesResponse {
  for (const name of req.InstanceTypes) {
    if (!ctx.instanceTypes.has(name)) throw new Ec2Error("InvalidParameterValue", `The following supplied instance types do not exist: [${truncate(name)}]`);
  }
  const types = [...ctx.instanceTypes.values()]
    .filter((t) => req.InstanceTypes.length === 0 || req.InstanceTypes.includes(t.name))
    .filter((t) => matchesFilters(req.Filters, { "instance-type": t.name, "vcpu-info.default-vcpus": String(t.vcpus), "memory-info.size-in-mib": String(t.memoryMib) }));
  return {
    InstanceTypes: types.map((t) => ({
      InstanceType: t.name, CurrentGeneration: true,
      VCpuInfo: { DefaultVCpus: t.vcpus, DefaultCores: t.vcpus, DefaultThreadsPerCore: 1 },
      MemoryInfo: { SizeInMiB: t.memoryMib }, ProcessorInfo: { SupportedArchitectures: ["x86_64"] }, Hypervisor: "kvm",
      SupportedRootDeviceTypes: ["ebs"], SupportedVirtualizationTypes: ["hvm"],
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
];
