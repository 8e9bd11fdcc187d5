// ModifyVolume and DescribeVolumesModifications: a volume's size, type,
// IOPS and throughput changed while it stays in use. The new values are
// checked as CreateVolume checks them, recorded as the volume's latest
// modification (modifying), applied by the host (grown, and the new QoS
// set live: lifecycle.ts) and then become the volume's own (completed).
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { inTransaction } from "../db/tx.js";
import { describeKind, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { handOff } from "../handOff.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { defineKind } from "../resource.js";
import { requireIds } from "../validate.js";
import { volumeSteps } from "./lifecycle.js";
import { volumeKind, type VolumeQualityRecord, type VolumeRow } from "./model.js";
import { volumeQuality, type VolumeQuality } from "./types.js";

const qualityOf = (q: VolumeQuality): VolumeQualityRecord => ({ size: q.sizeGiB, type: q.type, iops: q.iops ?? null, throughput: q.throughput ?? null });

/**
 * The volume after the request: what it names, the rest kept where the new
 * type has the same setting (an io1 volume keeps its IOPS as io2; a gp3
 * volume turned gp2 gets gp2's IOPS).
 */
function target(v: VolumeRow, req: compute.ModifyVolumeRequest): VolumeQuality {
  const type = req.VolumeType || v.volume_type;
  const sameType = type === v.volume_type;
  const size = req.Size ?? v.size_gib;
  if (size < v.size_gib) throw new Ec2Error("InvalidParameterValue", `New size cannot be smaller than existing size (${v.size_gib}GiB).`);
  const keepIops = sameType || (["io1", "io2"].includes(type) && ["io1", "io2"].includes(v.volume_type));
  return volumeQuality(type, size, req.Iops ?? (keepIops && type !== "gp2" ? v.iops ?? undefined : undefined), req.Throughput ?? (sameType ? v.throughput ?? undefined : undefined));
}

function modificationOf(v: VolumeRow): compute.VolumeModification {
  const o = v.mod_original;
  const t = v.mod_target;
  return {
    VolumeId: v.id, ModificationState: v.mod_state ?? "", StatusMessage: v.mod_message,
    TargetSize: t?.size, TargetIops: t?.iops ?? undefined, TargetVolumeType: t?.type ?? "", TargetThroughput: t?.throughput ?? undefined,
    OriginalSize: o?.size, OriginalIops: o?.iops ?? undefined, OriginalVolumeType: o?.type ?? "", OriginalThroughput: o?.throughput ?? undefined,
    Progress: v.mod_state === "completed" ? 100 : 0, StartTime: v.mod_start_time?.toISOString() ?? "", EndTime: v.mod_end_time?.toISOString() ?? "",
  };
}

async function modifyVolume(ctx: RequestContext, req: compute.ModifyVolumeRequest): Promise<compute.ModifyVolumeResponse> {
  if (!req.VolumeId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VolumeId");
  requireIds(volumeKind, [req.VolumeId]);
  const row = await inTransaction(ctx.db, async (db) => {
    const [v] = await findOwned(ctx, db, volumeKind, [req.VolumeId], { lock: true });
    if (v!.mod_state === "modifying") throw new Ec2Error("IncorrectModificationState", `Volume ${v!.id} is already being modified.`);
    if (v!.task || (v!.state !== "available" && v!.state !== "in-use") || (v!.attachment_state && v!.attachment_state !== "attached")) {
      throw new Ec2Error("IncorrectState", `The volume '${v!.id}' is '${v!.attachment_state ?? v!.state}'${v!.task ? ` (${v!.task} in progress)` : ""}; it can be modified when available or attached.`);
    }
    const original = qualityOf({ type: v!.volume_type, sizeGiB: v!.size_gib, iops: v!.iops ?? undefined, throughput: v!.throughput ?? undefined });
    const wanted = qualityOf(target(v!, req));
    if (JSON.stringify(original) === JSON.stringify(wanted)) throw new Ec2Error("InvalidParameterValue", `The modification of ${v!.id} requests no change.`);
    const { rows: [r] } = await db.query<VolumeRow>(
      `UPDATE volumes SET task = 'modify', task_seq = task_seq + 1, state_changed_at = now(), mod_state = 'modifying', mod_message = '',
              mod_original = $2, mod_target = $3, mod_start_time = now(), mod_end_time = NULL WHERE id = $1 RETURNING *`,
      [v!.id, original, wanted],
    );
    return r!;
  });
  await handOff(ctx, volumeSteps([row]));
  ctx.log.info({ volumeId: row.id, target: row.mod_target }, "volume modification requested");
  return { VolumeModification: modificationOf(row) };
}

/** The volumes as DescribeVolumesModifications sees them: those modified at least once, with their latest modification. */
const modificationView = defineKind<VolumeRow, compute.VolumeModification>({
  ...volumeKind,
  // A volume that exists but was never modified (describeVolumesModifications checks the volumes first), in EC2's words.
  notFound: (ids) => new Ec2Error("InvalidVolumeModification.NotFound", `Modification for volume '${ids.join(", ")}' does not exist.`),
  filters: {
    "volume-id": "volumes.id", "modification-state": "volumes.mod_state", "start-time": "to_char(volumes.mod_start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    "target-size": "volumes.mod_target->>'size'", "target-iops": "volumes.mod_target->>'iops'", "target-volume-type": "volumes.mod_target->>'type'",
    "target-throughput": "volumes.mod_target->>'throughput'", "original-size": "volumes.mod_original->>'size'", "original-iops": "volumes.mod_original->>'iops'",
    "original-volume-type": "volumes.mod_original->>'type'", "original-throughput": "volumes.mod_original->>'throughput'",
  },
  toApi: async (_ctx, rows) => rows.map(modificationOf),
});

export const volumeModificationOperations: AnyOperation[] = [
  defineOperation<compute.ModifyVolumeRequest, compute.ModifyVolumeResponse>({
    name: "ModifyVolume", summary: "Grow an EBS volume or change its type, IOPS or throughput while it is in use", request: compute.ModifyVolumeRequest, response: compute.ModifyVolumeResponse,
    mutates: true, kinds: ["volume"], handler: modifyVolume,
  }),
  defineOperation<compute.DescribeVolumesModificationsRequest, compute.DescribeVolumesModificationsResponse>({
    name: "DescribeVolumesModifications", summary: "Describe the latest modification of EBS volumes", request: compute.DescribeVolumesModificationsRequest,
    response: compute.DescribeVolumesModificationsResponse, mutates: false, kinds: ["volume"], filters: Object.keys(modificationView.filters),
    handler: async (ctx, req) => {
      if (req.VolumeIds.length) await findOwned(ctx, ctx.db, volumeKind, req.VolumeIds);
      const page = await describeKind(ctx, modificationView, { ids: req.VolumeIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken, where: ["volumes.mod_state IS NOT NULL"] });
      return { VolumesModifications: page.items, NextToken: page.nextToken };
    },
  }),
];
