// The snapshot a new volume is made from, for CreateVolume and RunInstances'
// mappings alike: checked before anything is written, and held (share-locked)
// in the transaction that inserts the volume, so a concurrent DeleteSnapshot
// either sees the volume being made from it (and refuses) or comes first.
import type { RequestContext } from "../context.js";
import type { Queryable } from "../db/tx.js";
import { findReadable } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { requireIds } from "../validate.js";
import { snapshotKind } from "./model.js";

/**
 * The size of a volume made from `snapshotId` (the caller's, or shared with
 * it, and completed): `size` when given and at least the snapshot's, else
 * the snapshot's. Writes nothing.
 */
export async function sizeFromSnapshot(ctx: RequestContext, snapshotId: string, size: number | undefined): Promise<number> {
  requireIds(snapshotKind, [snapshotId]);
  const [snap] = await findReadable(ctx, ctx.db, snapshotKind, [snapshotId]);
  if (snap!.state !== "completed") throw new Ec2Error("IncorrectState", `Snapshot '${snap!.id}' is in the '${snap!.state}' state; a volume is made only from a completed snapshot.`);
  if (size !== undefined && size < snap!.volume_size_gib) {
    throw new Ec2Error("InvalidParameterValue", `Volume of ${size}GiB is smaller than snapshot '${snap!.id}', expect size >= ${snap!.volume_size_gib}GiB`);
  }
  return size ?? snap!.volume_size_gib;
}

/** Share-locks these snapshots until the caller's transaction ends; NotFound for any no longer completed. */
export async function holdSnapshots(db: Queryable, snapshotIds: readonly string[]): Promise<void> {
  const ids = [...new Set(snapshotIds.filter(Boolean))];
  if (ids.length === 0) return;
  const { rows } = await db.query<{ id: string }>("SELECT id FROM snapshots WHERE id = ANY($1) AND state = 'completed' FOR SHARE", [ids]);
  const gone = ids.filter((id) => !rows.some((s) => s.id === id));
  if (gone.length) throw snapshotKind.notFound(gone);
}
