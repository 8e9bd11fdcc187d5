// EC2 Describe* filters compiled to SQL: each filter is an OR over its values
// (with EC2's `*` and `?` wildcards), filters are ANDed. Values are always
// bound parameters, never spliced into SQL.
import { Ec2Error } from "./errors.js";
import type { compute } from "@cirrus/proto";
import { truncate } from "./validate.js";

/** Filter name → SQL expression yielding the text to match. */
export type FilterColumns = Record<string, string>;

/** Turns an EC2 wildcard pattern into a LIKE pattern (escape char `\`). */
export function likePattern(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, "%").replace(/\?/g, "_");
}

/**
 * SQL conditions for `filters` on a table whose EC2 id is `idColumn`.
 * Appends bound values to `params`. Unknown filter names are InvalidParameterValue.
 * With `tagOwnerId`, tag filters match only that account's tags (a shared
 * image's tags are its owner's, not the caller's).
 */
export function compileFilters(filters: readonly compute.Filter[], columns: FilterColumns, idColumn: string, params: unknown[], tagOwnerId?: string): string[] {
  const bind = (v: unknown) => `$${params.push(v)}`;
  return filters.map(({ Name, Values }) => {
    if (Values.length === 0) throw new Ec2Error("InvalidParameterValue", `The filter '${truncate(Name)}' requires at least one value`);
    const patterns = bind(Values.map(likePattern));
    const tagsOf = () => `tags t WHERE t.resource_id = ${idColumn}${tagOwnerId === undefined ? "" : ` AND t.owner_id = ${bind(tagOwnerId)}`}`;
    if (Name.startsWith("tag:")) {
      return `EXISTS (SELECT 1 FROM ${tagsOf()} AND t.key = ${bind(Name.slice(4))} AND t.value LIKE ANY (${patterns}))`;
    }
    if (Name === "tag-key" || Name === "tag-value") {
      const col = Name === "tag-key" ? "t.key" : "t.value";
      return `EXISTS (SELECT 1 FROM ${tagsOf()} AND ${col} LIKE ANY (${patterns}))`;
    }
    const expr = columns[Name];
    if (!expr) throw new Ec2Error("InvalidParameterValue", `The filter '${truncate(Name)}' is invalid`);
    return `(${expr})::text LIKE ANY (${patterns})`;
  });
}

/** EC2 wildcard matching of one value (`*` any run, `?` one character). */
function wildcardMatch(pattern: string, value: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "s").test(value);
}

/**
 * The same filters over an in-memory item (for catalogues served from
 * configuration): `fields` maps each filter name the item supports to its
 * value. Unknown filter names are InvalidParameterValue.
 */
export function matchesFilters(filters: readonly compute.Filter[], fields: Record<string, string>): boolean {
  return filters.every((f) => {
    const value = fields[f.Name];
    if (value === undefined) throw new Ec2Error("InvalidParameterValue", `The filter '${truncate(f.Name)}' is invalid`);
    return f.Values.some((v) => wildcardMatch(v, value));
  });
}
