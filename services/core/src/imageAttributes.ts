// The attributes of an image: DescribeImageAttribute, ModifyImageAttribute,
// ResetImageAttribute. Launch permissions (image_launch_permissions,
// migration 011) share an image with an account or with every account
// (group "all": public); an image with none is private. Only an image's
// owner reads or changes its attributes, as in EC2 (findOwnImage).
import { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import { inTransaction } from "./db/tx.js";
import { Ec2Error } from "./errors.js";
import { blockDeviceMappingsOf, findOwnImage } from "./images.js";
import { defineOperation } from "./operation.js";
import { requireAttribute, truncate } from "./validate.js";

/** The image attributes of EC2's model that Cirrus does not serve. */
const UNSERVED = ["kernel", "ramdisk", "productCodes", "sriovNetSupport", "bootMode", "tpmSupport", "uefiData", "lastLaunchedTime", "imdsSupport", "deregistrationProtection"];

/** The grantees one launch permission names: "all" for the group all, or a 12-digit account id; InvalidAMIAttributeItemValue for anything else. */
function granteesOf(p: compute.LaunchPermission): string[] {
  if (!p.Group && !p.UserId) throw new Ec2Error("InvalidAMIAttributeItemValue", "A launch permission needs a Group or a UserId.");
  if (p.Group && p.Group !== "all") throw new Ec2Error("InvalidAMIAttributeItemValue", `Invalid attribute item value "${truncate(p.Group)}" for group item type.`);
  if (p.UserId && !/^\d{12}$/.test(p.UserId)) throw new Ec2Error("InvalidAMIAttributeItemValue", `Invalid attribute item value "${truncate(p.UserId)}" for userId item type.`);
  return [p.Group, p.UserId].filter(Boolean);
}

interface PermissionChange {
  add: string[];
  remove: string[];
}

/** The launch permissions a ModifyImageAttribute adds and removes, from LaunchPermission or the flat form; undefined when it names none. */
function permissionChange(req: compute.ModifyImageAttributeRequest): PermissionChange | undefined {
  const structured = req.LaunchPermission !== undefined && req.LaunchPermission.Add.length + req.LaunchPermission.Remove.length > 0;
  const flat = req.OperationType !== "" || req.UserIds.length > 0 || req.UserGroups.length > 0;
  if (structured && flat) throw new Ec2Error("InvalidParameterCombination", "LaunchPermission cannot be combined with OperationType, UserIds or UserGroups");
  if (structured) return { add: req.LaunchPermission!.Add.flatMap(granteesOf), remove: req.LaunchPermission!.Remove.flatMap(granteesOf) };
  if (!flat && req.Attribute !== "launchPermission") return undefined;
  if (!req.OperationType) throw new Ec2Error("MissingParameter", "The request must contain the parameter OperationType");
  if (req.OperationType !== "add" && req.OperationType !== "remove") {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(req.OperationType)}) for parameter OperationType is invalid: add or remove`);
  }
  const named = [...req.UserGroups.map((Group) => ({ Group, UserId: "" })), ...req.UserIds.map((UserId) => ({ Group: "", UserId }))].flatMap(granteesOf);
  if (named.length === 0) throw new Ec2Error("MissingParameter", "The request must contain the parameter UserIds or UserGroups");
  return req.OperationType === "add" ? { add: named, remove: [] } : { add: [], remove: named };
}

/** The new description a ModifyImageAttribute sets (Description, or the flat Attribute=description with Value); undefined when it sets none. */
function descriptionChange(req: compute.ModifyImageAttributeRequest): string | undefined {
  const value = req.Description?.Value ?? (req.Attribute === "description" ? req.Value : undefined);
  if (value !== undefined && value.length > 255) throw new Ec2Error("InvalidParameterValue", "Description must be at most 255 characters");
  return value;
}

/**
 * ModifyImageAttribute: adds and removes launch permissions (a grantee both
 * added and removed ends removed), or sets the description. Postcondition:
 * the change is committed, or nothing is written.
 */
async function modifyImageAttribute(ctx: RequestContext, req: compute.ModifyImageAttributeRequest): Promise<compute.ModifyImageAttributeResponse> {
  if (req.Attribute) requireAttribute(req.Attribute, ["launchPermission", "description"], [...UNSERVED, "blockDeviceMapping"]);
  const permissions = permissionChange(req);
  const description = descriptionChange(req);
  if (permissions && description !== undefined) throw new Ec2Error("InvalidParameterCombination", "A request modifies either launch permissions or the description");
  if (!permissions && description === undefined) throw new Ec2Error("MissingParameter", "The request must contain the parameter LaunchPermission, OperationType with UserIds or UserGroups, or Description");
  await inTransaction(ctx.db, async (db) => {
    const image = await findOwnImage(ctx, db, req.ImageId);
    if (permissions) {
      await db.query("INSERT INTO image_launch_permissions (image_id, grantee) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING", [image.id, permissions.add]);
      await db.query("DELETE FROM image_launch_permissions WHERE image_id = $1 AND grantee = ANY($2)", [image.id, permissions.remove]);
    } else {
      await db.query("UPDATE images SET description = $2 WHERE id = $1", [image.id, description]);
    }
  });
  ctx.log.info({ imageId: req.ImageId, ...permissions }, "image attribute modified");
  return {};
}

/** DescribeImageAttribute: the caller's image and the one attribute asked for. */
async function describeImageAttribute(ctx: RequestContext, req: compute.DescribeImageAttributeRequest): Promise<compute.ImageAttribute> {
  requireAttribute(req.Attribute, ["launchPermission", "description", "blockDeviceMapping"], UNSERVED);
  const image = await findOwnImage(ctx, ctx.db, req.ImageId);
  if (req.Attribute === "description") return compute.ImageAttribute.fromPartial({ ImageId: image.id, Description: { Value: image.description } });
  if (req.Attribute === "blockDeviceMapping") return compute.ImageAttribute.fromPartial({ ImageId: image.id, BlockDeviceMappings: blockDeviceMappingsOf(image) });
  const { rows } = await ctx.db.query<{ grantee: string }>("SELECT grantee FROM image_launch_permissions WHERE image_id = $1 ORDER BY grantee <> 'all', grantee", [image.id]);
  return compute.ImageAttribute.fromPartial({
    ImageId: image.id,
    LaunchPermissions: rows.map(({ grantee }) => (grantee === "all" ? { Group: "all" } : { UserId: grantee })),
  });
}

export const imageAttributeOperations = [
  defineOperation({
    name: "DescribeImageAttribute",
    summary: "Describe an attribute of your image: launchPermission, description or blockDeviceMapping",
    request: compute.DescribeImageAttributeRequest,
    response: compute.ImageAttribute,
    mutates: false,
    kinds: ["image"],
    handler: describeImageAttribute,
  }),
  defineOperation({
    name: "ModifyImageAttribute",
    summary: "Share your image (launch permissions for accounts, or the group all) or change its description",
    request: compute.ModifyImageAttributeRequest,
    response: compute.ModifyImageAttributeResponse,
    mutates: true,
    kinds: ["image"],
    handler: modifyImageAttribute,
  }),
  defineOperation({
    name: "ResetImageAttribute",
    summary: "Make your image private again (--attribute launchPermission)",
    request: compute.ResetImageAttributeRequest,
    response: compute.ResetImageAttributeResponse,
    mutates: true,
    kinds: ["image"],
    handler: async (ctx: RequestContext, req: compute.ResetImageAttributeRequest): Promise<compute.ResetImageAttributeResponse> => {
      requireAttribute(req.Attribute, ["launchPermission"]);
      await inTransaction(ctx.db, async (db) => {
        const image = await findOwnImage(ctx, db, req.ImageId);
        await db.query("DELETE FROM image_launch_permissions WHERE image_id = $1", [image.id]);
      });
      return {};
    },
  }),
];
