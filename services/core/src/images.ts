// The image kind: RegisterImage, DescribeImages, DeregisterImage. An image
// is a qcow2 root disk (plus, for direct kernel boot, a kernel and initrd) at
// the same path on every host; instances get copy-on-write overlays of it.
// An image is private to its owner until a launch permission
// (imageAttributes.ts) shares it with an account or makes it public; the
// accounts it is shared with see and launch it, only its owner changes it.
import { realpath, stat } from "node:fs/promises";
import { imagePathRefusal, isPlainAbsolutePath, newId, parseDirList } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import { inTransaction, isUniqueViolation, type Queryable } from "./db/tx.js";
import { describeKind } from "./describe.js";
import { Ec2Error } from "./errors.js";
import { IMAGE_GRANTS, readableBy } from "./sharing.js";
import { defineOperation } from "./operation.js";
import { defineKind } from "./resource.js";
import { insertTags, loadTags } from "./tags.js";
import { requireIds, requireNonEmpty, tagsFor, truncate } from "./validate.js";

export interface ImageRow {
  id: string;
  owner_id: string;
  name: string;
  description: string;
  state: string;
  location: string;
  kernel_location: string;
  ramdisk_location: string;
  kernel_cmdline: string;
  architecture: string;
  root_device_name: string;
  virtualization_type: string;
  root_size_gib: number;
  created_at: Date;
}

const IMAGE_NAME = /^[A-Za-z0-9()[\]. /\-'@_]{3,128}$/;
const DEFAULT_ROOT_GIB = 8;

/**
 * Throws unless `value` names a file below one of the operator's image
 * directories, also with every symlink followed. Host paths reach qemu-img
 * and libvirt, so they are plain (no `..`) first of all. The file is
 * resolved where this machine has it; hosts that have it and this machine
 * not check it again with their own view at launch (the agent's checkImage).
 */
async function requireImagePath(param: string, value: string, required: boolean, imageDirs: readonly string[]): Promise<void> {
  if (!value && !required) return;
  if (!value) throw new Ec2Error("MissingParameter", `The request must contain the parameter ${param}`);
  const invalid = (why: string) => new Ec2Error("InvalidParameterValue", `Value (${truncate(value)}) for parameter ${param} is invalid: ${why}`);
  if (!isPlainAbsolutePath(value)) throw invalid("expecting an absolute path of letters, digits and ._+@=- without . or .. segments");
  const lexical = imagePathRefusal(value, imageDirs);
  if (lexical) throw invalid(lexical);
  let resolved: string;
  try {
    resolved = await realpath(value);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw invalid("it cannot be read here");
  }
  const realDirs = await Promise.all(imageDirs.map((d) => realpath(d).catch(() => d)));
  if (imagePathRefusal(resolved, realDirs)) throw invalid("with its symlinks followed it is not below an image directory");
  if (!(await stat(resolved)).isFile()) throw invalid("it is not a regular file");
}

function rootSizeGib(req: compute.RegisterImageRequest, rootDevice: string): number {
  if (req.BlockDeviceMappings.length === 0) return DEFAULT_ROOT_GIB;
  const [only, ...rest] = req.BlockDeviceMappings;
  if (rest.length || !only || only.DeviceName !== rootDevice) {
    throw new Ec2Error("Unsupported", "Only a block device mapping for the root device is supported yet");
  }
  const { Iops, SnapshotId, VolumeType, Throughput, Encrypted } = only.Ebs ?? {};
  if (Iops !== undefined || SnapshotId || VolumeType || Throughput !== undefined || Encrypted || only.VirtualName || only.NoDevice) {
    throw new Ec2Error("Unsupported", "Images from snapshots, and root devices with a type, IOPS, encryption or instance store, are not supported by Cirrus yet: the root device takes only VolumeSize");
  }
  const size = only.Ebs?.VolumeSize ?? DEFAULT_ROOT_GIB;
  if (!Number.isInteger(size) || size < 1 || size > 16384) {
    throw new Ec2Error("InvalidParameterValue", `Volume size ${size} is invalid: expecting 1 to 16384 GiB`);
  }
  return size;
}

async function registerImage(ctx: RequestContext, req: compute.RegisterImageRequest): Promise<compute.RegisterImageResponse> {
  if (!req.Name) throw new Ec2Error("MissingParameter", "The request must contain the parameter Name");
  if (!IMAGE_NAME.test(req.Name)) {
    throw new Ec2Error("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/', '@', '_', ' ', ''' and '[', ']'");
  }
  if (req.Description.length > 255) throw new Ec2Error("InvalidParameterValue", "Description must be at most 255 characters");
  const imageDirs = parseDirList(ctx.config.CIRRUS_IMAGE_DIRS);
  await requireImagePath("ImageLocation", req.ImageLocation, true, imageDirs);
  await requireImagePath("KernelLocation", req.KernelLocation, false, imageDirs);
  await requireImagePath("RamdiskLocation", req.RamdiskLocation, false, imageDirs);
  if (req.RamdiskLocation && !req.KernelLocation) throw new Ec2Error("InvalidParameterCombination", "RamdiskLocation requires KernelLocation");
  if (req.KernelCommandLine && (!req.KernelLocation || !/^[\x20-\x7e]{1,1024}$/.test(req.KernelCommandLine))) {
    throw new Ec2Error("InvalidParameterValue", "KernelCommandLine must be printable ASCII of at most 1024 characters, with KernelLocation");
  }
  const architecture = req.Architecture || "x86_64";
  if (architecture !== "x86_64") throw new Ec2Error("InvalidParameterValue", `Architecture '${truncate(architecture)}' is not supported: hosts are x86_64`);
  const virtualizationType = req.VirtualizationType || "hvm";
  if (virtualizationType !== "hvm") throw new Ec2Error("InvalidParameterValue", "VirtualizationType must be hvm");
  const rootDevice = req.RootDeviceName || "/dev/vda";
  if (!/^\/dev\/(vd|sd|xvd)[a-z]$/.test(rootDevice)) throw new Ec2Error("InvalidParameterValue", `Invalid RootDeviceName: ${truncate(rootDevice)}`);
  const size = rootSizeGib(req, rootDevice);
  const tags = tagsFor("image", req.TagSpecifications, ["image"]);

  const id = newId("ami");
  try {
    await inTransaction(ctx.db, async (db) => {
      await db.query(
        `INSERT INTO images (id, owner_id, name, description, state, location, kernel_location, ramdisk_location, kernel_cmdline,
                             architecture, root_device_name, virtualization_type, root_size_gib)
         VALUES ($1,$2,$3,$4,'available',$5,$6,$7,$8,$9,$10,$11,$12)`,
        [id, ctx.principal.accountId, req.Name, req.Description, req.ImageLocation, req.KernelLocation, req.RamdiskLocation, req.KernelCommandLine,
          architecture, rootDevice, virtualizationType, size],
      );
      await insertTags(db, ctx.principal.accountId, imageKind.resourceType, [id], tags);
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new Ec2Error("InvalidAMIName.Duplicate", `AMI name ${req.Name} is already in use by an AMI`);
    throw err;
  }
  ctx.log.info({ imageId: id }, "image registered");
  return { ImageId: id };
}

/** The image's block device mappings: its root disk only. */
export function blockDeviceMappingsOf(r: ImageRow): compute.BlockDeviceMapping[] {
  return [{ DeviceName: r.root_device_name, Ebs: { VolumeSize: r.root_size_gib, DeleteOnTermination: true, SnapshotId: "", VolumeType: "" }, VirtualName: "", NoDevice: "" }];
}

function imageToProto(r: ImageRow, tags: compute.Tag[], isPublic: boolean): compute.Image {
  return {
    ImageId: r.id, Name: r.name, Description: r.description, State: r.state, ImageLocation: r.location,
    Architecture: r.architecture, OwnerId: r.owner_id, CreationDate: r.created_at.toISOString(), Public: isPublic,
    ImageType: "machine", RootDeviceName: r.root_device_name, RootDeviceType: "ebs", VirtualizationType: r.virtualization_type,
    Hypervisor: "kvm", BlockDeviceMappings: blockDeviceMappingsOf(r),
    Tags: tags, PlatformDetails: "Linux/UNIX", KernelLocation: r.kernel_location, RamdiskLocation: r.ramdisk_location, KernelCommandLine: r.kernel_cmdline,
  };
}

/** SQL: the image (a row of `images`) is the caller's, public, or shared with the caller's account. */
function readableImage(ctx: RequestContext, params: unknown[]): string {
  return readableBy(IMAGE_GRANTS, "images", ctx.principal.accountId, params);
}

const notFound = (ids: readonly string[]) => new Ec2Error("InvalidAMIID.NotFound", `The image id '[${ids.join(", ")}]' does not exist`);

export const imageKind = defineKind<ImageRow, compute.Image>({
  name: "image",
  resourceType: "image",
  idPrefix: "ami",
  malformed: "InvalidAMIID.Malformed",
  table: "images",
  notFound,
  filters: {
    "image-id": "images.id",
    name: "images.name",
    description: "images.description",
    state: "images.state",
    architecture: "images.architecture",
    "owner-id": "images.owner_id",
    "root-device-name": "images.root_device_name",
    "virtualization-type": "images.virtualization_type",
    "is-public": "EXISTS (SELECT 1 FROM image_launch_permissions p WHERE p.image_id = images.id AND p.grantee = 'all')",
  },
  visible: () => "images.state <> 'deregistered'",
  readable: readableImage,
  // Tags are their owner's: another account sees a shared image without them.
  toApi: async (ctx, rows) => {
    const [tags, { rows: open }] = await Promise.all([
      loadTags(ctx.db, rows.filter((r) => r.owner_id === ctx.principal.accountId).map((r) => r.id)),
      ctx.db.query<{ image_id: string }>("SELECT image_id FROM image_launch_permissions WHERE image_id = ANY($1) AND grantee = 'all'", [rows.map((r) => r.id)]),
    ]);
    const isPublic = new Set(open.map((r) => r.image_id));
    return rows.map((r) => imageToProto(r, tags.get(r.id) ?? [], isPublic.has(r.id)));
  },
  states: ["available", "deregistered"],
});

/**
 * The available image `imageId` if the caller may launch it (its own, public
 * or shared with its account), locked FOR UPDATE when `lock` and `db` is a
 * transaction's client; InvalidAMIID.NotFound otherwise, exactly as for an
 * image that does not exist.
 */
export async function findLaunchableImage(ctx: RequestContext, imageId: string, db: Queryable = ctx.db, lock = false): Promise<ImageRow> {
  requireNonEmpty("ImageId", imageId ? [imageId] : []);
  requireIds(imageKind, [imageId]);
  const params: unknown[] = [imageId];
  const { rows } = await db.query<ImageRow>(`SELECT * FROM images WHERE id = $1 AND state = 'available' AND ${readableImage(ctx, params)}${lock ? " FOR UPDATE" : ""}`, params);
  if (!rows[0]) throw notFound([imageId]);
  return rows[0];
}

/**
 * The caller's own available image `imageId`, locked FOR UPDATE when `db`
 * is a transaction's client. An image the caller cannot see is
 * InvalidAMIID.NotFound; one it sees but another account owns (public or
 * shared) is AuthFailure, as EC2 answers.
 */
export async function findOwnImage(ctx: RequestContext, db: Queryable, imageId: string): Promise<ImageRow> {
  const image = await findLaunchableImage(ctx, imageId, db, true);
  if (image.owner_id !== ctx.principal.accountId) throw new Ec2Error("AuthFailure", `Not authorized for image:${imageId}`);
  return image;
}

/** Account ids of the images DescribeImages' `Owners` names: self, account ids, and the aliases of owners Cirrus has no images of (amazon…). */
function ownerIds(ctx: RequestContext, owners: readonly string[]): string[] {
  return owners.flatMap((o) => {
    if (o === "self") return [ctx.principal.accountId];
    if (/^\d{12}$/.test(o)) return [o];
    if (["amazon", "aws-marketplace", "aws-backup-vault"].includes(o)) return [];
    throw new Ec2Error("InvalidUserID.Malformed", `Invalid user id: "${truncate(o)}"`);
  });
}

/** Grantees DescribeImages' `ExecutableUsers` names: all (public images), self (shared with the caller) and account ids. */
function grantees(ctx: RequestContext, users: readonly string[]): string[] {
  return users.map((u) => {
    if (u === "all" || /^\d{12}$/.test(u)) return u;
    if (u === "self") return ctx.principal.accountId;
    throw new Ec2Error("InvalidUserID.Malformed", `Invalid user id: "${truncate(u)}"`);
  });
}

/**
 * DescribeImages: the images the caller may launch (its own, public ones,
 * those shared with it), narrowed by Owners and by ExecutableUsers (an
 * explicit launch permission for one of them: an owner's implicit one does
 * not count, as in EC2).
 */
async function describeImages(ctx: RequestContext, req: compute.DescribeImagesRequest): Promise<compute.DescribeImagesResponse> {
  const params: unknown[] = [];
  const where: string[] = [];
  if (req.Owners.length) where.push(`images.owner_id = ANY($${params.push(ownerIds(ctx, req.Owners))})`);
  if (req.ExecutableUsers.length) {
    where.push(`EXISTS (SELECT 1 FROM image_launch_permissions p WHERE p.image_id = images.id AND p.grantee = ANY($${params.push(grantees(ctx, req.ExecutableUsers))}))`);
  }
  const page = await describeKind(ctx, imageKind, { ids: req.ImageIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken, where, params });
  return { Images: page.items, NextToken: page.nextToken };
}

export const imageOperations = [
  defineOperation({
    name: "RegisterImage",
    summary: "Register a qcow2 disk image as an AMI",
    request: compute.RegisterImageRequest,
    response: compute.RegisterImageResponse,
    mutates: true,
    kinds: ["image"],
    handler: registerImage,
  }),
  defineOperation({
    name: "DescribeImages",
    summary: "Describe the images you may launch: your own, public and shared ones (all pages unless --max-results or --next-token is given)",
    request: compute.DescribeImagesRequest,
    response: compute.DescribeImagesResponse,
    mutates: false,
    kinds: ["image"],
    handler: describeImages,
  }),
  defineOperation({
    name: "DeregisterImage",
    summary: "Deregister an image (the caller's own)",
    request: compute.DeregisterImageRequest,
    response: compute.DeregisterImageResponse,
    mutates: true,
    kinds: ["image"],
    handler: async (ctx: RequestContext, req: compute.DeregisterImageRequest): Promise<compute.DeregisterImageResponse> => {
      await findOwnImage(ctx, ctx.db, req.ImageId);
      const res = await ctx.db.query("UPDATE images SET state = 'deregistered' WHERE id = $1 AND owner_id = $2 AND state = 'available'", [req.ImageId, ctx.principal.accountId]);
      if (res.rowCount !== 1) throw notFound([req.ImageId]);
      return { Return: true };
    },
  }),
];
