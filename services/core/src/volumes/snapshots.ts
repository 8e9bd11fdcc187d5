// CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot. A
// snapshot is pending until its host work is done (lifecycle.ts), then
// completed; the store makes snapshots of one volume incremental and keeps
// every other snapshot and volume readable whatever is deleted
// (docs/ARCHITECTURE.md, "Block storage").
import { newId } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { inTransaction, type Queryable } from "../db/tx.js";
import { describeKind, findOwned, findReadable } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { handOff } from "../handOff.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { insertTags } from "../tags.js";
import { requireIds, tagsFor, truncate } from "../validate.js";
import { snapshotSteps } from "./lifecycle.js";
import { snapshotKind, snapshotToApi, volumeKind, type SnapshotRow } from "./model.js";

/** EC2 shows this volume id on a copied snapshot: a copy was taken of no volume. */
const COPY_VOLUME_ID = "vol-ffffffff";
const MAX_DESCRIPTION = 255;

function requireDescription(d: string): void {
  if (d.length > MAX_DESCRIPTION) throw new Ec2Error("InvalidParameterValue", `Value for parameter description is invalid. Length exceeds maximum of ${MAX_DESCRIPTION}.`);
}

type NewSnapshot = Pick<SnapshotRow, "id" | "volume_id" | "volume_size_gib" | "description" | "source_snapshot_id" | "task">;

/** Inserts a pending snapshot and its tags, in the caller's transaction. */
async function insertSnapshot(ctx: RequestContext, db: Queryable, s: NewSnapshot, tags: compute.Tag[]): Promise<SnapshotRow> {
  const { rows: [row] } = await db.query<SnapshotRow>(
    `INSERT INTO snapshots (id, owner_id, volume_id, volume_size_gib, description, source_snapshot_id, state, task)
     VALUES ($1,$2,$3,$4,$5,$6,'pending',$7) RETURNING *`,
    [s.id, ctx.principal.accountId, s.volume_id, s.volume_size_gib, s.description, s.source_snapshot_id, s.task],
  );
  await insertTags(db, ctx.principal.accountId, "snapshot", [s.id], tags);
  return row!;
}

/** After the commit: the snapshot's step to the workers. */
async function requested(ctx: RequestContext, row: SnapshotRow): Promise<void> {
  await handOff(ctx, snapshotSteps([row]));
  ctx.log.info({ snapshotId: row.id, volumeId: row.volume_id, sourceSnapshotId: row.source_snapshot_id ?? undefined }, "snapshot requested");
}

async function createSnapshot(ctx: RequestContext, req: compute.CreateSnapshotRequest): Promise<compute.Snapshot> {
  if (!req.VolumeId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VolumeId");
  requireIds(volumeKind, [req.VolumeId]);
  requireDescription(req.Description);
  const tags = tagsFor("snapshot", req.TagSpecifications, ["snapshot"]);
  const row = await inTransaction(ctx.db, async (db) => {
    const [v] = await findOwned(ctx, db, volumeKind, [req.VolumeId], { lock: true });
    if ((v!.state !== "available" && v!.state !== "in-use") || v!.task === "create" || v!.task === "delete") {
      throw new Ec2Error("IncorrectState", `The volume '${v!.id}' is '${v!.state}'; a snapshot is taken of an available or in-use volume.`);
    }
    return insertSnapshot(ctx, db, { id: newId("snap"), volume_id: v!.id, volume_size_gib: v!.size_gib, description: req.Description, source_snapshot_id: null, task: "create" }, tags);
  });
  await requested(ctx, row);
  return snapshotToApi(row, tags);
}

async function deleteSnapshot(ctx: RequestContext, req: compute.DeleteSnapshotRequest): Promise<compute.DeleteSnapshotResponse> {
  if (!req.SnapshotId) throw new Ec2Error("MissingParameter", "The request must contain the parameter SnapshotId");
  const row = await inTransaction(ctx.db, async (db) => {
    const [s] = await findOwned(ctx, db, snapshotKind, [req.SnapshotId], { lock: true });
    if (s!.state === "pending") throw new Ec2Error("IncorrectState", `The snapshot '${s!.id}' is pending; delete it once it has completed.`);
    const { rows: [user] } = await db.query<{ id: string }>(
      // Volumes still being made from it: by CreateVolume, or by a launch (attaching with no task of their own).
      `SELECT id FROM volumes WHERE snapshot_id = $1 AND (task = 'create' OR (task IS NULL AND attachment_state = 'attaching'))
       UNION ALL SELECT id FROM snapshots WHERE source_snapshot_id = $1 AND task = 'copy' LIMIT 1`,
      [s!.id],
    );
    if (user) throw new Ec2Error("InvalidSnapshot.InUse", `The snapshot ${s!.id} is currently in use by ${user.id}`);
    // Gone for the API at once; the lifecycle removes its data.
    const { rows: [r] } = await db.query<SnapshotRow>(
      "UPDATE snapshots SET state = 'deleted', task = 'delete', task_seq = task_seq + 1, state_changed_at = now() WHERE id = $1 RETURNING *",
      [s!.id],
    );
    return r!;
  });
  await handOff(ctx, snapshotSteps([row]));
  ctx.log.info({ snapshotId: row.id }, "snapshot deletion requested");
  return {};
}

async function copySnapshot(ctx: RequestContext, req: compute.CopySnapshotRequest): Promise<compute.CopySnapshotResponse> {
  if (req.Encrypted) throw new Ec2Error("Unsupported", "Encrypted snapshot copies are not supported by Cirrus yet.");
  if (!req.SourceSnapshotId) throw new Ec2Error("MissingParameter", "The request must contain the parameter SourceSnapshotId");
  if (!req.SourceRegion) throw new Ec2Error("MissingParameter", "The request must contain the parameter SourceRegion");
  const region = ctx.config.CIRRUS_REGION;
  for (const [name, value] of [["SourceRegion", req.SourceRegion], ["DestinationRegion", req.DestinationRegion]] as const) {
    if (value && value !== region) throw new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter ${name} is invalid. This cloud has one region, ${region}.`);
  }
  requireIds(snapshotKind, [req.SourceSnapshotId]);
  requireDescription(req.Description);
  const tags = tagsFor("snapshot", req.TagSpecifications, ["snapshot"]);
  // The source (the caller's, or shared with it) is share-locked so a concurrent DeleteSnapshot sees this copy (and refuses) or comes first (and this refuses).
  const row = await inTransaction(ctx.db, async (db) => {
    const [source] = await findReadable(ctx, db, snapshotKind, [req.SourceSnapshotId], { lock: true });
    if (source!.state !== "completed") throw new Ec2Error("IncorrectState", `Snapshot is in invalid state - ${source!.state}`);
    return insertSnapshot(ctx, db, {
      id: newId("snap"), volume_id: COPY_VOLUME_ID, volume_size_gib: source!.volume_size_gib,
      description: req.Description || `[Copied ${source!.id} from ${region}]`, source_snapshot_id: source!.id, task: "copy",
    }, tags);
  });
  await requested(ctx, row);
  return { SnapshotId: row.id, Tags: tags };
}

/** DescribeSnapshots' owner aliases: Cirrus has no Amazon or Marketplace snapshots, so those answer nothing. */
function ownerCondition(ctx: RequestContext, owners: readonly string[], params: unknown[]): string {
  const ids = owners.map((o) => (o === "self" ? ctx.principal.accountId : o));
  for (const o of ids) {
    if (!/^\d{12}$/.test(o) && o !== "amazon" && o !== "aws-marketplace") throw new Ec2Error("InvalidUserID.Malformed", `Invalid user id: "${truncate(o)}"`);
  }
  return `snapshots.owner_id = ANY($${params.push(ids)})`;
}

export const snapshotOperations: AnyOperation[] = [
  defineOperation<compute.CreateSnapshotRequest, compute.Snapshot>({
    name: "CreateSnapshot", summary: "Take a point-in-time snapshot of an EBS volume", request: compute.CreateSnapshotRequest, response: compute.Snapshot,
    mutates: true, kinds: ["snapshot", "volume"], handler: createSnapshot,
  }),
  defineOperation<compute.DescribeSnapshotsRequest, compute.DescribeSnapshotsResponse>({
    name: "DescribeSnapshots", summary: "Describe EBS snapshots", request: compute.DescribeSnapshotsRequest, response: compute.DescribeSnapshotsResponse,
    mutates: false, kinds: ["snapshot"],
    handler: async (ctx, req) => {
      // Restorable by an account: its own, or shared with it or with every account.
      const restorable = req.RestorableByUserIds.map((u) => (u === "self" ? ctx.principal.accountId : u));
      const params: unknown[] = [];
      const by = restorable.length ? `$${params.push(restorable)}` : "";
      const where = [
        ...(req.OwnerIds.length ? [ownerCondition(ctx, req.OwnerIds, params)] : []),
        ...(by ? [`(snapshots.owner_id = ANY(${by}) OR EXISTS (SELECT 1 FROM snapshot_permissions p WHERE p.snapshot_id = snapshots.id AND (p.grantee = 'all' OR p.grantee = ANY(${by}))))`] : []),
      ];
      const page = await describeKind(ctx, snapshotKind, { ids: req.SnapshotIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken, where, params });
      return { Snapshots: page.items, NextToken: page.nextToken };
    },
  }),
  defineOperation<compute.DeleteSnapshotRequest, compute.DeleteSnapshotResponse>({
    name: "DeleteSnapshot", summary: "Delete an EBS snapshot", request: compute.DeleteSnapshotRequest, response: compute.DeleteSnapshotResponse,
    mutates: true, kinds: ["snapshot"], handler: deleteSnapshot,
  }),
  defineOperation<compute.CopySnapshotRequest, compute.CopySnapshotResponse>({
    name: "CopySnapshot", summary: "Copy a completed snapshot into an independent one", request: compute.CopySnapshotRequest, response: compute.CopySnapshotResponse,
    mutates: true, kinds: ["snapshot"], handler: copySnapshot,
  }),
];
