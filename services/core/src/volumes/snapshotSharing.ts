// The createVolumePermission attribute of snapshots: ModifySnapshotAttribute,
// DescribeSnapshotAttribute, ResetSnapshotAttribute. A snapshot shared with
// an account (or the group all) is one that account sees in
// DescribeSnapshots and may make volumes from and copy; only its owner reads
// or changes the attribute, or deletes it (sharing.ts has the rules both
// images and snapshots follow).
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { inTransaction } from "../db/tx.js";
import { findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { applyPermissionChange, grantsOf, permissionChange, SNAPSHOT_GRANTS } from "../sharing.js";
import { requireAttribute } from "../validate.js";
import { snapshotKind } from "./model.js";

const ATTRIBUTE = "createVolumePermission";
/** EC2's other snapshot attribute, which Cirrus does not serve (it has no product codes). */
const UNSERVED = ["productCodes"];

async function modifySnapshotAttribute(ctx: RequestContext, req: compute.ModifySnapshotAttributeRequest): Promise<compute.ModifySnapshotAttributeResponse> {
  if (req.Attribute) requireAttribute(req.Attribute, [ATTRIBUTE], UNSERVED);
  const change = permissionChange({
    structured: req.CreateVolumePermission, operationType: req.OperationType, userIds: req.UserIds, groups: req.GroupNames, attributeNamed: req.Attribute === ATTRIBUTE,
    names: { structured: "CreateVolumePermission", groups: "GroupNames" }, badItem: "InvalidParameterValue",
  });
  if (!change) throw new Ec2Error("MissingParameter", "The request must contain the parameter CreateVolumePermission, or OperationType with UserIds or GroupNames");
  await inTransaction(ctx.db, async (db) => {
    const [s] = await findOwned(ctx, db, snapshotKind, [req.SnapshotId], { lock: true });
    await applyPermissionChange(db, SNAPSHOT_GRANTS, s!.id, change);
  });
  ctx.log.info({ snapshotId: req.SnapshotId, ...change }, "snapshot attribute modified");
  return {};
}

export const snapshotSharingOperations: AnyOperation[] = [
  defineOperation<compute.ModifySnapshotAttributeRequest, compute.ModifySnapshotAttributeResponse>({
    name: "ModifySnapshotAttribute", summary: "Share your snapshot with accounts or the group all (createVolumePermission), or stop sharing it",
    request: compute.ModifySnapshotAttributeRequest, response: compute.ModifySnapshotAttributeResponse, mutates: true, kinds: ["snapshot"], handler: modifySnapshotAttribute,
  }),
  defineOperation<compute.DescribeSnapshotAttributeRequest, compute.DescribeSnapshotAttributeResponse>({
    name: "DescribeSnapshotAttribute", summary: "Describe who may make volumes from your snapshot (--attribute createVolumePermission)",
    request: compute.DescribeSnapshotAttributeRequest, response: compute.DescribeSnapshotAttributeResponse, mutates: false, kinds: ["snapshot"],
    handler: async (ctx, req) => {
      requireAttribute(req.Attribute, [ATTRIBUTE], UNSERVED);
      const [s] = await findOwned(ctx, ctx.db, snapshotKind, [req.SnapshotId]);
      return { SnapshotId: s!.id, CreateVolumePermissions: await grantsOf(ctx.db, SNAPSHOT_GRANTS, s!.id) };
    },
  }),
  defineOperation<compute.ResetSnapshotAttributeRequest, compute.ResetSnapshotAttributeResponse>({
    name: "ResetSnapshotAttribute", summary: "Make your snapshot private again (--attribute createVolumePermission)",
    request: compute.ResetSnapshotAttributeRequest, response: compute.ResetSnapshotAttributeResponse, mutates: true, kinds: ["snapshot"],
    handler: async (ctx, req) => {
      requireAttribute(req.Attribute, [ATTRIBUTE], UNSERVED);
      await inTransaction(ctx.db, async (db) => {
        const [s] = await findOwned(ctx, db, snapshotKind, [req.SnapshotId], { lock: true });
        await db.query("DELETE FROM snapshot_permissions WHERE snapshot_id = $1", [s!.id]);
      });
      return {};
    },
  }),
];
