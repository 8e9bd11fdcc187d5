// DescribeInstanceTypes, DescribeAvailabilityZones, DescribeRegions: served
// from configuration.
import { Ec2Error } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "./context.js";
import { truncate } from "./validate.js";

function matches(filters: readonly compute.Filter[], fields: Record<string, string>): boolean {
  return filters.every((f) => {
    const value = fields[f.Name];
    if (value === undefined) throw new Ec2Error("InvalidParameterValue", `The filter '${truncate(f.Name)}' is invalid`);
    return f.Values.some((v) => new RegExp(`^${v.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`).test(value));
  });
}

export function describeInstanceTypes(ctx: DomainContext, req: compute.DescribeInstanceTypesRequest): compute.DescribeInstanceTypesResponse {
  for (const name of req.InstanceTypes) {
    if (!ctx.instanceTypes.has(name)) throw new Ec2Error("InvalidParameterValue", `The following supplied instance types do not exist: [${truncate(name)}]`);
  }
  const types = [...ctx.instanceTypes.values()]
    .filter((t) => req.InstanceTypes.length === 0 || req.InstanceTypes.includes(t.name))
    .filter((t) => matches(req.Filters, { "instance-type": t.name, "vcpu-info.default-vcpus": String(t.vcpus), "memory-info.size-in-mib": String(t.memoryMib) }));
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

export function describeAvailabilityZones(ctx: DomainContext, req: compute.DescribeAvailabilityZonesRequest): compute.DescribeAvailabilityZonesResponse {
  for (const z of req.ZoneNames) {
    if (!ctx.config.zones.includes(z)) throw new Ec2Error("InvalidParameterValue", `Invalid availability zone: [${truncate(z)}]`);
  }
  const zones = ctx.config.zones
    .map((z, i) => ({ ZoneName: z, ZoneId: `${ctx.config.CIRRUS_REGION}-az${i + 1}`, State: "available", RegionName: ctx.config.CIRRUS_REGION, ZoneType: "availability-zone" }))
    .filter((z) => req.ZoneNames.length === 0 || req.ZoneNames.includes(z.ZoneName))
    .filter((z) => matches(req.Filters, { "zone-name": z.ZoneName, "zone-id": z.ZoneId, state: z.State, "region-name": z.RegionName }));
  return { AvailabilityZones: zones };
}

export function describeRegions(ctx: DomainContext, req: compute.DescribeRegionsRequest): compute.DescribeRegionsResponse {
  const region = ctx.config.CIRRUS_REGION;
  for (const r of req.RegionNames) {
    if (r !== region) throw new Ec2Error("InvalidParameterValue", `Invalid region: ${truncate(r)}`);
  }
  return { Regions: [{ RegionName: region, Endpoint: ctx.config.CIRRUS_API_LISTEN, OptInStatus: "opt-in-not-required" }] };
}
