// Sharing a resource with other accounts, as images (launch permissions)
// and snapshots (create-volume permissions) are shared: a grant names the
// group "all" (public) or a 12-digit account id, and a Modify*Attribute
// request adds and removes grants in one of EC2's two forms: structured
// (Add/Remove lists) or flat (OperationType with UserIds and group names).
import type { compute } from "@cirrus/proto";
import type { Queryable } from "./db/tx.js";
import { Ec2Error, type Ec2ErrorCode } from "./errors.js";
import { truncate } from "./validate.js";

export interface PermissionChange {
  add: string[];
  remove: string[];
}

/** What a Modify*Attribute request says about grants, in both forms, with the names and code its resource uses. */
export interface PermissionRequest {
  structured: compute.LaunchPermissionModifications | undefined;
  operationType: string;
  userIds: readonly string[];
  groups: readonly string[];
  /** True when the flat form names the permission attribute itself (Attribute=launchPermission…). */
  attributeNamed: boolean;
  /** The structured parameter's name and the flat groups' name, for messages. */
  names: { structured: string; groups: string };
  /** EC2's code for a grant that is neither "all" nor an account id. */
  badItem: Ec2ErrorCode;
}

/** The grantees one grant names: "all", or a 12-digit account id. */
function granteesOf(p: compute.LaunchPermission, badItem: Ec2ErrorCode): string[] {
  if (!p.Group && !p.UserId) throw new Ec2Error(badItem, "A permission needs a Group or a UserId.");
  if (p.Group && p.Group !== "all") throw new Ec2Error(badItem, `Invalid attribute item value "${truncate(p.Group)}" for group item type.`);
  if (p.UserId && !/^\d{12}$/.test(p.UserId)) throw new Ec2Error(badItem, `Invalid attribute item value "${truncate(p.UserId)}" for userId item type.`);
  return [p.Group, p.UserId].filter(Boolean);
}

/** The grants a request adds and removes; undefined when it names none. Writes nothing; throws EC2's errors for a malformed one. */
export function permissionChange(r: PermissionRequest): PermissionChange | undefined {
  const structured = r.structured !== undefined && r.structured.Add.length + r.structured.Remove.length > 0;
  const flat = r.operationType !== "" || r.userIds.length > 0 || r.groups.length > 0;
  if (structured && flat) throw new Ec2Error("InvalidParameterCombination", `${r.names.structured} cannot be combined with OperationType, UserIds or ${r.names.groups}`);
  if (structured) return { add: r.structured!.Add.flatMap((p) => granteesOf(p, r.badItem)), remove: r.structured!.Remove.flatMap((p) => granteesOf(p, r.badItem)) };
  if (!flat && !r.attributeNamed) return undefined;
  if (!r.operationType) throw new Ec2Error("MissingParameter", "The request must contain the parameter OperationType");
  if (r.operationType !== "add" && r.operationType !== "remove") {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(r.operationType)}) for parameter OperationType is invalid: add or remove`);
  }
  const named = [...r.groups.map((Group) => ({ Group, UserId: "" })), ...r.userIds.map((UserId) => ({ Group: "", UserId }))].flatMap((p) => granteesOf(p, r.badItem));
  if (named.length === 0) throw new Ec2Error("MissingParameter", `The request must contain the parameter UserIds or ${r.names.groups}`);
  return r.operationType === "add" ? { add: named, remove: [] } : { add: [], remove: named };
}

/** A grants table: (`<key>`, grantee) rows. */
export interface GrantsTable {
  table: "image_launch_permissions" | "snapshot_permissions";
  key: "image_id" | "snapshot_id";
}

/** Images' launch permissions (migration 011). */
export const IMAGE_GRANTS: GrantsTable = { table: "image_launch_permissions", key: "image_id" };
/** Snapshots' create-volume permissions (migration 016). */
export const SNAPSHOT_GRANTS: GrantsTable = { table: "snapshot_permissions", key: "snapshot_id" };

/** Applies a change (a grantee both added and removed ends removed), in the caller's transaction. */
export async function applyPermissionChange(db: Queryable, t: GrantsTable, id: string, change: PermissionChange): Promise<void> {
  await db.query(`INSERT INTO ${t.table} (${t.key}, grantee) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, [id, change.add]);
  await db.query(`DELETE FROM ${t.table} WHERE ${t.key} = $1 AND grantee = ANY($2)`, [id, change.remove]);
}

/** The grants of one resource as EC2 lists them: the group all first, then accounts in order. */
export async function grantsOf(db: Queryable, t: GrantsTable, id: string): Promise<compute.LaunchPermission[]> {
  const { rows } = await db.query<{ grantee: string }>(`SELECT grantee FROM ${t.table} WHERE ${t.key} = $1 ORDER BY grantee <> 'all', grantee`, [id]);
  return rows.map(({ grantee }) => (grantee === "all" ? { Group: "all", UserId: "" } : { Group: "", UserId: grantee }));
}

/** SQL (over `table`) for rows its owner or a grant lets the caller read; the caller's id goes into `params`. */
export function readableBy(t: GrantsTable, table: string, accountId: string, params: unknown[]): string {
  const me = `$${params.push(accountId)}`;
  return `(${table}.owner_id = ${me} OR EXISTS (SELECT 1 FROM ${t.table} p WHERE p.${t.key} = ${table}.id AND p.grantee IN ('all', ${me})))`;
}
