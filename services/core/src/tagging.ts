// CreateTags, DeleteTags, DescribeTags: tags of any resource kind of the
// registry, scoped to the caller's account like everything else.
import { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import { inTransaction, type Queryable } from "./db/tx.js";
import { findOwned } from "./describe.js";
import { Ec2Error } from "./errors.js";
import { compileFilters } from "./filters.js";
import { defineOperation } from "./operation.js";
import { KINDS, kindOfId } from "./registry.js";
import type { ResourceKind } from "./resource.js";
import { insertTags } from "./tags.js";
import { decodeToken, encodeToken, MAX_TAGS, pageSize, requireNonEmpty, truncate, validateTags } from "./validate.js";

/**
 * The caller's resources with these ids, grouped by kind and locked, so two
 * calls tagging one resource cannot both pass the tag limit. An id of no
 * known kind is InvalidID; a missing one is its kind's NotFound.
 */
async function lockResources(ctx: RequestContext, db: Queryable, ids: readonly string[]): Promise<Map<ResourceKind, string[]>> {
  requireNonEmpty("ResourceId", ids);
  const byKind = new Map<ResourceKind, string[]>();
  for (const id of new Set(ids)) {
    const kind = kindOfId(id);
    if (!kind) throw new Ec2Error("InvalidID", `The ID '${truncate(id)}' is not valid`);
    byKind.set(kind, [...(byKind.get(kind) ?? []), id]);
  }
  for (const [kind, kindIds] of byKind) await findOwned(ctx, db, kind, kindIds, { lock: true });
  return byKind;
}

async function createTags(ctx: RequestContext, req: compute.CreateTagsRequest): Promise<compute.CreateTagsResponse> {
  requireNonEmpty("Tag", req.Tags);
  validateTags(req.Tags);
  await inTransaction(ctx.db, async (db) => {
    const byKind = await lockResources(ctx, db, req.Resources);
    const keys = req.Tags.map((t) => t.Key);
    const ids = [...byKind.values()].flat();
    // The new value replaces the old one of the same key, as in EC2.
    await db.query("DELETE FROM tags WHERE resource_id = ANY($1) AND key = ANY($2)", [ids, keys]);
    for (const [kind, kindIds] of byKind) await insertTags(db, ctx.principal.accountId, kind.resourceType, kindIds, req.Tags);
    const { rows: over } = await db.query<{ resource_id: string }>(
      "SELECT resource_id FROM tags WHERE resource_id = ANY($1) GROUP BY resource_id HAVING count(*) > $2 LIMIT 1",
      [ids, MAX_TAGS],
    );
    if (over[0]) throw new Ec2Error("TagLimitExceeded", `The maximum number of tags per resource is ${MAX_TAGS}: '${over[0].resource_id}' would have more.`);
  });
  return {};
}

async function deleteTags(ctx: RequestContext, req: compute.DeleteTagsRequest): Promise<compute.DeleteTagsResponse> {
  for (const t of req.Tags) {
    if (!t.Key) throw new Ec2Error("MissingParameter", "Each tag to delete needs a Key");
    if (t.Key.toLowerCase().startsWith("aws:")) throw new Ec2Error("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use");
  }
  await inTransaction(ctx.db, async (db) => {
    const ids = [...(await lockResources(ctx, db, req.Resources)).values()].flat();
    if (req.Tags.length === 0) {
      await db.query("DELETE FROM tags WHERE resource_id = ANY($1)", [ids]);
      return;
    }
    // A tag given with a value is deleted only if it has that value (NULL: any value).
    await db.query(
      `DELETE FROM tags t USING unnest($2::text[], $3::text[]) AS d(key, value)
        WHERE t.resource_id = ANY($1) AND t.key = d.key AND (d.value IS NULL OR t.value = d.value)`,
      [ids, req.Tags.map((t) => t.Key), req.Tags.map((t) => t.Value ?? null)],
    );
  });
  return {};
}

const TAG_FILTERS = { key: "tags.key", value: "tags.value", "resource-id": "tags.resource_id", "resource-type": "tags.resource_type" };

async function describeTags(ctx: RequestContext, req: compute.DescribeTagsRequest): Promise<compute.DescribeTagsResponse> {
  const limit = pageSize(req.MaxResults, false);
  const after = decodeToken(req.NextToken);
  if (after && after.length !== 2) throw new Ec2Error("InvalidNextToken", "The specified token is not valid.");
  const params: unknown[] = [ctx.principal.accountId, ctx.config.CIRRUS_TERMINATED_VISIBLE_MS];
  const where = [
    "tags.owner_id = $1",
    // Instances terminated long enough ago are gone from the API, and so are their tags.
    `NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = tags.resource_id AND i.state = 'terminated' AND i.terminated_at <= now() - $2 * interval '1 millisecond')`,
    ...compileFilters(req.Filters, TAG_FILTERS, "tags.resource_id", params),
  ];
  if (after) where.push(`(tags.resource_id, tags.key) > ($${params.push(after[0])}, $${params.push(after[1])})`);
  const { rows } = await ctx.db.query<{ resource_id: string; key: string; value: string; resource_type: string }>(
    `SELECT resource_id, key, value, resource_type FROM tags WHERE ${where.join(" AND ")} ORDER BY resource_id, key LIMIT ${limit + 1}`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    Tags: page.map((r) => ({ Key: r.key, ResourceId: r.resource_id, ResourceType: r.resource_type, Value: r.value })),
    NextToken: rows.length > limit && last ? encodeToken([last.resource_id, last.key]) : "",
  };
}

const ALL_KINDS = KINDS.map((k) => k.name);

export const tagOperations = [
  defineOperation({
    name: "CreateTags",
    summary: "Add or overwrite tags on resources of any kind",
    request: compute.CreateTagsRequest,
    response: compute.CreateTagsResponse,
    mutates: true,
    kinds: ALL_KINDS,
    handler: createTags,
  }),
  defineOperation({
    name: "DeleteTags",
    summary: "Delete tags (by key, or key and value; all of them without --tags)",
    request: compute.DeleteTagsRequest,
    response: compute.DeleteTagsResponse,
    mutates: true,
    kinds: ALL_KINDS,
    handler: deleteTags,
  }),
  defineOperation({
    name: "DescribeTags",
    summary: "Describe tags (all pages unless --max-results or --next-token is given)",
    request: compute.DescribeTagsRequest,
    response: compute.DescribeTagsResponse,
    mutates: false,
    kinds: ALL_KINDS,
    filters: [...Object.keys(TAG_FILTERS), "tag:<key>"],
    handler: describeTags,
  }),
];
