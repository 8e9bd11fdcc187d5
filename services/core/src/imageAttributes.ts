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
import { applyPermissionChange, grantsOf, IMAGE_GRANTS, permissionChange } from "./sharing.js";
import { requireAttribute } from "./validate.js";

/** The image attributes of EC2's model that Cirrus does not serve. */
const UNSERVED = ["kernel", "ramdisk", "productCodes", "sriovNetSupport", "bootMode", "tpmSupport", "uefiData", "lastLaunchedTime", "imdsSupport", "deregistrationProtection"];

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
  const permissions = permissionChange({
    structured: req.LaunchPermission, operationType: req.OperationType, userIds: req.UserIds, groups: req.UserGroups, attributeNamed: req.Attribute === "launchPermission",
    names: { structured: "LaunchPermission", groups: "UserGroups" }, badItem: "InvalidAMIAttributeItemValue",
  });
  const description = descriptionChange(req);
  if (permissions && description !== undefined) throw new Ec2Error("InvalidParameterCombination", "A request modifies either launch permissions or the description");
  if (!permissions && description === undefined) throw new Ec2Error("MissingParameter", "The request must contain the parameter LaunchPermission, OperationType with UserIds or UserGroups, or Description");
  await inTransaction(ctx.db, async (db) => {
    const image = await findOwnImage(ctx, db, req.ImageId);
    if (permissions) {
      await applyPermissionChange(db, IMAGE_GRANTS, image.id, permissions);
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
  return compute.ImageAttribute.fromPartial({ ImageId: image.id, LaunchPermissions: await grantsOf(ctx.db, IMAGE_GRANTS, image.id) });
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
