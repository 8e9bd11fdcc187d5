// What the cloud offers: instance types, availability zones, regions.
import { compute } from "@cirrus/proto";
import { defineCommand, type AnyCommandSpec } from "../command.js";
import { grid } from "../output.js";
import { FILTERS, MAX_RESULTS, NEXT_TOKEN } from "./common-params.js";

const api = compute.ComputeService;

export const catalogCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "describe-instance-types",
    summary: "Describe the instance types on offer",
    rpc: api.describeInstanceTypes,
    request: compute.DescribeInstanceTypesRequest,
    response: compute.DescribeInstanceTypesResponse,
    params: [
      { flag: "instance-types", kind: "string-list", description: "instance type names" },
      FILTERS("instance-type, vcpu-info.default-vcpus, memory-info.size-in-mib, …"),
      MAX_RESULTS,
      NEXT_TOKEN,
    ],
    listKey: "InstanceTypes",
    paginate: true,
    table: (res) =>
      grid(res.InstanceTypes, {
        InstanceType: (t) => t.InstanceType,
        VCpus: (t) => t.VCpuInfo?.DefaultVCpus,
        MemoryMiB: (t) => t.MemoryInfo?.SizeInMiB,
        Architectures: (t) => t.ProcessorInfo?.SupportedArchitectures.join(","),
      }),
  }),
  defineCommand({
    name: "describe-availability-zones",
    summary: "Describe availability zones",
    rpc: api.describeAvailabilityZones,
    request: compute.DescribeAvailabilityZonesRequest,
    response: compute.DescribeAvailabilityZonesResponse,
    params: [{ flag: "zone-names", kind: "string-list", description: "zone names" }, FILTERS("zone-name, state, region-name, …")],
    listKey: "AvailabilityZones",
    table: (res) =>
      grid(res.AvailabilityZones, {
        ZoneName: (z) => z.ZoneName,
        ZoneId: (z) => z.ZoneId,
        State: (z) => z.State,
        RegionName: (z) => z.RegionName,
      }),
  }),
  defineCommand({
    name: "describe-regions",
    summary: "Describe regions",
    rpc: api.describeRegions,
    request: compute.DescribeRegionsRequest,
    response: compute.DescribeRegionsResponse,
    params: [{ flag: "region-names", kind: "string-list", description: "region names" }],
    listKey: "Regions",
    table: (res) =>
      grid(res.Regions, {
        RegionName: (r) => r.RegionName,
        Endpoint: (r) => r.Endpoint,
        OptInStatus: (r) => r.OptInStatus,
      }),
  }),
];
