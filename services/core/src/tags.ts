// The tags table: tags of any resource, keyed by its EC2 id, with the owning
// account and EC2 resource type beside them so DescribeTags needs no join.
import type { compute } from "@cirrus/proto";
import type { Queryable } from "./db/tx.js";

/** Inserts the same tags on many resources of one type and owner, in one statement. */
export async function insertTags(db: Queryable, ownerId: string, resourceType: string, resourceIds: readonly string[], tags: readonly compute.Tag[]): Promise<void> {
  if (tags.length === 0 || resourceIds.length === 0) return;
  const ids: string[] = [];
  const keys: string[] = [];
  const values: string[] = [];
  for (const id of resourceIds) {
    for (const t of tags) {
      ids.push(id);
      keys.push(t.Key);
      values.push(t.Value);
    }
  }
  await db.query(
    "INSERT INTO tags (resource_id, key, value, owner_id, resource_type) SELECT r, k, v, $4, $5 FROM unnest($1::text[], $2::text[], $3::text[]) AS t(r, k, v)",
    [ids, keys, values, ownerId, resourceType],
  );
}

/** Removes every tag of these resources (when the resources themselves go). */
export async function deleteTagsOf(db: Queryable, resourceIds: readonly string[]): Promise<void> {
  await db.query("DELETE FROM tags WHERE resource_id = ANY($1)", [resourceIds]);
}

/** Tags of each resource, keyed by resource id, in key order. */
export async function loadTags(db: Queryable, resourceIds: readonly string[]): Promise<Map<string, compute.Tag[]>> {
  const out = new Map<string, compute.Tag[]>();
  if (resourceIds.length === 0) return out;
  const { rows } = await db.query<{ resource_id: string; key: string; value: string }>(
    "SELECT resource_id, key, value FROM tags WHERE resource_id = ANY($1) ORDER BY resource_id, key",
    [resourceIds],
  );
  for (const r of rows) {
    const list = out.get(r.resource_id);
    if (list) list.push({ Key: r.key, Value: r.value });
    else out.set(r.resource_id, [{ Key: r.key, Value: r.value }]);
  }
  return out;
}
