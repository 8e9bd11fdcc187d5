import type { PoolClient } from "pg";
import type { compute } from "@cirrus/proto";

/** Inserts the same tags on many resources in one statement. */
export async function insertTags(db: PoolClient, resourceIds: readonly string[], tags: readonly compute.Tag[]): Promise<void> {
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
  await db.query("INSERT INTO tags (resource_id, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])", [ids, keys, values]);
}

/** A pool or a client: anything that can run a query. */
export type Queryable = { query: PoolClient["query"] };

/** Tags of each resource, keyed by resource id. */
export async function loadTags(db: Queryable, resourceIds: readonly string[]): Promise<Map<string, compute.Tag[]>> {
  const out = new Map<string, compute.Tag[]>();
  if (resourceIds.length === 0) return out;
  const { rows } = await db.query<{ resource_id: string; key: string; value: string }>(
    "SELECT resource_id, key, value FROM tags WHERE resource_id = ANY($1) ORDER BY resource_id, key",
    [resourceIds],
  );
  for (const r of rows) {
    const list = out.get(r.resource_id) ?? [];
    list.push({ Key: r.key, Value: r.value });
    out.set(r.resource_id, list);
  }
  return out;
}
