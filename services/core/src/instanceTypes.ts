// The instance type catalogue: EC2 names and sizes, overridable by the
// operator with a JSON file ([{ "name": "t2.micro", "vcpus": 1, "memoryMib": 1024 }, …]).
import { readFileSync } from "node:fs";
import { z } from "zod";

export interface InstanceTypeSpec {
  name: string;
  vcpus: number;
  memoryMib: number;
  /** Instance store: `count` host-local scratch disks of `sizeGiB` each (the d sizes). */
  instanceStorage?: { count: number; sizeGiB: number };
}

export const defaultInstanceTypes: readonly InstanceTypeSpec[] = [
  { name: "t2.nano", vcpus: 1, memoryMib: 512 },
  { name: "t2.micro", vcpus: 1, memoryMib: 1024 },
  { name: "t2.small", vcpus: 1, memoryMib: 2048 },
  { name: "t2.medium", vcpus: 2, memoryMib: 4096 },
  { name: "t2.large", vcpus: 2, memoryMib: 8192 },
  { name: "m5.large", vcpus: 2, memoryMib: 8192 },
  { name: "m5.xlarge", vcpus: 4, memoryMib: 16384 },
  { name: "c5.large", vcpus: 2, memoryMib: 4096 },
  { name: "c5.xlarge", vcpus: 4, memoryMib: 8192 },
  { name: "r5.large", vcpus: 2, memoryMib: 16384 },
  // EC2's instance store sizes of these types (GB there, GiB here).
  { name: "m5d.large", vcpus: 2, memoryMib: 8192, instanceStorage: { count: 1, sizeGiB: 75 } },
  { name: "m5d.xlarge", vcpus: 4, memoryMib: 16384, instanceStorage: { count: 1, sizeGiB: 150 } },
  { name: "m5d.2xlarge", vcpus: 8, memoryMib: 32768, instanceStorage: { count: 1, sizeGiB: 300 } },
  { name: "c5d.large", vcpus: 2, memoryMib: 4096, instanceStorage: { count: 1, sizeGiB: 50 } },
  { name: "c5d.xlarge", vcpus: 4, memoryMib: 8192, instanceStorage: { count: 1, sizeGiB: 100 } },
  { name: "c5d.2xlarge", vcpus: 8, memoryMib: 16384, instanceStorage: { count: 1, sizeGiB: 200 } },
];

/** Targets of instance-store disks (EBS volumes take vdb…vdw: volumes/targets.ts). */
const INSTANCE_STORE_TARGETS = ["vdx", "vdy", "vdz"];

/** The instance-store disks an instance of this type gets (agent.proto's InstanceStoreDisk). */
export function instanceStoreOf(type: InstanceTypeSpec): { name: string; target: string; sizeGib: number }[] {
  const s = type.instanceStorage;
  return s ? Array.from({ length: s.count }, (_, i) => ({ name: `ephemeral${i}`, target: INSTANCE_STORE_TARGETS[i]!, sizeGib: s.sizeGiB })) : [];
}

const fileSchema = z.array(
  z.object({
    name: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/),
    vcpus: z.number().int().min(1).max(512),
    memoryMib: z.number().int().min(64),
    instanceStorage: z.object({ count: z.number().int().min(1).max(3), sizeGiB: z.number().int().min(1).max(16_384) }).optional(),
  }),
);

export function loadInstanceTypes(file?: string): Map<string, InstanceTypeSpec> {
  const list = file ? fileSchema.parse(JSON.parse(readFileSync(file, "utf8"))) : defaultInstanceTypes;
  return new Map(list.map((t) => [t.name, t]));
}

/** EC2's burstable performance families and the CPU credit option each launches with by default. */
const DEFAULT_CPU_CREDITS = new Map<string, "standard" | "unlimited">([["t2", "standard"], ["t3", "unlimited"], ["t3a", "unlimited"], ["t4g", "unlimited"]]);

/** The burstable families whose instances have unlimited CPU credits. */
export const UNLIMITED_CREDIT_FAMILIES = [...DEFAULT_CPU_CREDITS].filter(([, credits]) => credits === "unlimited").map(([family]) => family);

/**
 * The CPU credit option of an instance of type `typeName` (e.g. t3.micro):
 * its family's EC2 default, since Cirrus takes no CreditSpecification and
 * nothing changes it; undefined for a type that is not burstable.
 */
export function cpuCreditsOf(typeName: string): "standard" | "unlimited" | undefined {
  return DEFAULT_CPU_CREDITS.get(typeName.split(".")[0]!);
}
