// EBS volume types as QoS classes: the sizes, IOPS and throughput each type
// accepts (checked before anything is written), what it gets when the
// request leaves them out, and the libvirt <iotune> that enforces them on
// the host (docs/ARCHITECTURE.md, "Volumes"). The figures are EC2's
// published ones for each type.
import type { agent } from "@cirrus/proto";
import { Ec2Error } from "../errors.js";
import { truncate } from "../validate.js";

export const VOLUME_TYPES = ["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"] as const;
export type VolumeType = (typeof VOLUME_TYPES)[number];

const MIB = 1024 * 1024;

interface TypeRule {
  minSize: number;
  maxSize: number;
  /** IOPS the request may set (io1, io2, gp3), with its bounds and the most per GiB. */
  iops?: { min: number; max: number; perGiB: number; default?: number };
  /** MiB/s the request may set (gp3). */
  throughput?: { min: number; max: number; default: number; perIops: number };
}

const RULES: Record<VolumeType, TypeRule> = {
  gp2: { minSize: 1, maxSize: 16_384 },
  gp3: { minSize: 1, maxSize: 16_384, iops: { min: 3_000, max: 16_000, perGiB: 500, default: 3_000 }, throughput: { min: 125, max: 1_000, default: 125, perIops: 0.25 } },
  io1: { minSize: 4, maxSize: 16_384, iops: { min: 100, max: 64_000, perGiB: 50 } },
  io2: { minSize: 4, maxSize: 65_536, iops: { min: 100, max: 256_000, perGiB: 1_000 } },
  st1: { minSize: 125, maxSize: 16_384 },
  sc1: { minSize: 125, maxSize: 16_384 },
  standard: { minSize: 1, maxSize: 1_024 },
};

/** A volume's type with the IOPS and throughput it ends up with (undefined where the type has none to show). */
export interface VolumeQuality {
  type: VolumeType;
  sizeGiB: number;
  iops?: number;
  throughput?: number;
}

export function isVolumeType(t: string): t is VolumeType {
  return (VOLUME_TYPES as readonly string[]).includes(t);
}

/** gp2's baseline: 3 IOPS per GiB, at least 100, at most 16,000. */
function gp2Iops(sizeGiB: number): number {
  return Math.min(16_000, Math.max(100, 3 * sizeGiB));
}

/**
 * The request's type, size, IOPS and throughput checked against the type's
 * rules, with the type's defaults filled in; InvalidParameterValue or
 * InvalidParameterCombination (EC2's codes) for anything out of range.
 */
export function volumeQuality(typeName: string, sizeGiB: number, iops: number | undefined, throughput: number | undefined): VolumeQuality {
  const type = typeName || "gp2";
  if (!isVolumeType(type)) throw new Ec2Error("InvalidParameterValue", `Value (${truncate(type)}) for parameter volumeType is invalid. Valid values are: ${VOLUME_TYPES.join(", ")}.`);
  const rule = RULES[type];
  if (!Number.isInteger(sizeGiB) || sizeGiB < rule.minSize || sizeGiB > rule.maxSize) {
    throw new Ec2Error("InvalidParameterValue", `Volume of ${sizeGiB}GiB is out of range for volume type ${type}: the size must be from ${rule.minSize} to ${rule.maxSize} GiB.`);
  }
  if (iops !== undefined && !rule.iops) throw new Ec2Error("InvalidParameterCombination", `The parameter iops is not supported for ${type} volumes.`);
  if (throughput !== undefined && !rule.throughput) throw new Ec2Error("InvalidParameterCombination", `The parameter throughput is not supported for ${type} volumes.`);
  if (type === "gp2") return { type, sizeGiB, iops: gp2Iops(sizeGiB) };
  if (!rule.iops) return { type, sizeGiB };
  const chosen = iops ?? rule.iops.default;
  if (chosen === undefined) throw new Ec2Error("MissingParameter", `The request must contain the parameter iops for ${type} volumes.`);
  const most = Math.min(rule.iops.max, rule.iops.perGiB * sizeGiB);
  if (!Number.isInteger(chosen) || chosen < rule.iops.min || chosen > Math.max(rule.iops.min, most)) {
    throw new Ec2Error("InvalidParameterValue", `Iops of ${chosen} is out of range for a ${sizeGiB}GiB ${type} volume: from ${rule.iops.min} to ${Math.max(rule.iops.min, most)} (at most ${rule.iops.perGiB} per GiB, ${rule.iops.max} in all).`);
  }
  if (!rule.throughput) return { type, sizeGiB, iops: chosen };
  const mbps = throughput ?? rule.throughput.default;
  const mostMbps = Math.min(rule.throughput.max, Math.floor(chosen * rule.throughput.perIops));
  if (!Number.isInteger(mbps) || mbps < rule.throughput.min || mbps > mostMbps) {
    throw new Ec2Error("InvalidParameterValue", `Throughput of ${mbps} MiB/s is out of range for a ${type} volume with ${chosen} IOPS: from ${rule.throughput.min} to ${mostMbps} (at most ${rule.throughput.perIops} MiB/s per IOPS).`);
  }
  return { type, sizeGiB, iops: chosen, throughput: mbps };
}

/** st1 and sc1: baseline MiB/s per TiB and their ceilings. */
const HDD_THROUGHPUT: Partial<Record<VolumeType, { perTiB: number; max: number }>> = { st1: { perTiB: 40, max: 500 }, sc1: { perTiB: 12, max: 250 } };
/** gp2 bursts to 3,000 IOPS on a bucket of 5.4 million I/O credits. */
const GP2_BURST_IOPS = 3_000;
const GP2_BURST_CREDITS = 5_400_000;

/**
 * The <iotune> that makes the host enforce the volume's class: IOPS as the
 * type gives them (gp2 with its burst to 3,000 for as long as a full credit
 * bucket lasts), throughput as the type caps it (gp2 128 or 250 MiB/s by
 * size, gp3 as set, io1/io2 1,000 MiB/s, st1/sc1 their baseline per TiB,
 * standard 90 MiB/s at 200 IOPS).
 */
export function iotuneOf(q: VolumeQuality): agent.VolumeQos {
  const qos = (iops: number, mbps: number, burst?: { iops: number; seconds: number }): agent.VolumeQos => ({
    totalIopsSec: iops, totalBytesSec: mbps * MIB, totalIopsSecMax: burst?.iops ?? 0, totalIopsSecMaxLength: burst?.seconds ?? 0,
  });
  switch (q.type) {
    case "gp2": {
      const base = gp2Iops(q.sizeGiB);
      const burst = base < GP2_BURST_IOPS ? { iops: GP2_BURST_IOPS, seconds: Math.floor(GP2_BURST_CREDITS / (GP2_BURST_IOPS - base)) } : undefined;
      return qos(base, q.sizeGiB > 170 ? 250 : 128, burst);
    }
    case "gp3":
      return qos(q.iops!, q.throughput!);
    case "io1":
    case "io2":
      return qos(q.iops!, 1_000);
    case "st1":
    case "sc1": {
      const hdd = HDD_THROUGHPUT[q.type]!;
      return qos(0, Math.max(1, Math.min(hdd.max, Math.floor((hdd.perTiB * q.sizeGiB) / 1024))));
    }
    case "standard":
      return qos(200, 90);
  }
}
