// CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume, DetachVolume.
// Every check happens before the one transaction that writes; each action
// sets the volume's task (with task_seq + 1) and the lifecycle
// (lifecycle.ts) does the host work after the commit.
import { newId } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { inTransaction, type Queryable } from "../db/tx.js";
import { describeKind, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { handOff } from "../handOff.js";
import { instanceKind, ROOT_DEVICE_NAME, type InstanceRow } from "../instances/model.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { insertTags, loadTags } from "../tags.js";
import { requestHash, requireClientToken, requireIds, tagsFor, truncate } from "../validate.js";
import { volumeSteps } from "./lifecycle.js";
import { attachmentOf, volumeKind, volumeToApi, type VolumeRow } from "./model.js";
import { ATTACHABLE_DEVICE, VOLUME_TARGETS } from "./targets.js";
import { holdSnapshots, sizeFromSnapshot } from "./sources.js";
import { volumeQuality } from "./types.js";


async function volumeByToken(db: Queryable, ctx: RequestContext, token: string, hash: string): Promise<compute.Volume | undefined> {
  const { rows: [prev] } = await db.query<VolumeRow & { request_hash: string }>("SELECT * FROM volumes WHERE owner_id = $1 AND client_token = $2", [ctx.principal.accountId, token]);
  if (!prev) return undefined;
  if (prev.request_hash !== hash) throw new Ec2Error("IdempotentParameterMismatch", `The client token '${truncate(token)}' was already used with different parameters`);
  return volumeToApi(prev, (await loadTags(db, [prev.id])).get(prev.id) ?? []);
}

async function createVolume(ctx: RequestContext, req: compute.CreateVolumeRequest): Promise<compute.Volume> {
  if (req.Encrypted) throw new Ec2Error("Unsupported", "Encrypted volumes are not supported by Cirrus yet.");
  if (!req.AvailabilityZone) throw new Ec2Error("MissingParameter", "The request must contain the parameter AvailabilityZone");
  if (!ctx.config.zones.includes(req.AvailabilityZone)) throw new Ec2Error("InvalidZone.NotFound", `The zone '${truncate(req.AvailabilityZone)}' does not exist.`);
  requireClientToken(req.ClientToken);
  const size = req.SnapshotId ? await sizeFromSnapshot(ctx, req.SnapshotId, req.Size) : req.Size;
  if (size === undefined) throw new Ec2Error("MissingParameter", "The request must contain the parameter size or snapshotId");
  const quality = volumeQuality(req.VolumeType, size, req.Iops, req.Throughput);
  const tags = tagsFor("volume", req.TagSpecifications, ["volume"]);
  const hash = requestHash(req);
  if (req.ClientToken) {
    const prev = await volumeByToken(ctx.db, ctx, req.ClientToken, hash);
    if (prev) return prev;
  }
  const id = newId("vol");
  const made = await inTransaction(ctx.db, async (db) => {
    await holdSnapshots(db, [req.SnapshotId]);
    const { rows: [row] } = await db.query<VolumeRow>(
      `INSERT INTO volumes (id, owner_id, availability_zone, size_gib, volume_type, iops, throughput, snapshot_id, state, task, client_token, request_hash)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'creating','create',$9,$10) ON CONFLICT DO NOTHING RETURNING *`,
      [id, ctx.principal.accountId, req.AvailabilityZone, size, quality.type, quality.iops ?? null, quality.throughput ?? null, req.SnapshotId,
        req.ClientToken || null, req.ClientToken ? hash : null],
    );
    // A concurrent call with the same token committed first (the INSERT waited for it).
    if (!row) return { previous: await volumeByToken(db, ctx, req.ClientToken, hash) };
    await insertTags(db, ctx.principal.accountId, "volume", [id], tags);
    return { row };
  });
  if ("previous" in made) {
    if (!made.previous) throw new Ec2Error("InternalError", "Client token conflict could not be resolved");
    return made.previous;
  }
  await handOff(ctx, volumeSteps([made.row]));
  ctx.log.info({ volumeId: id, sizeGiB: size, volumeType: quality.type, snapshotId: req.SnapshotId || undefined }, "volume requested");
  return volumeToApi(made.row, tags);
}

/** The caller's volume, locked for the transaction. */
async function lockedVolume(ctx: RequestContext, db: Queryable, volumeId: string): Promise<VolumeRow> {
  if (!volumeId) throw new Ec2Error("MissingParameter", "The request must contain the parameter VolumeId");
  const [v] = await findOwned(ctx, db, volumeKind, [volumeId], { lock: true });
  return v!;
}

/** Sets the volume's task (and whatever else `set` names) with a new task_seq; returns the new row. */
async function setTask(db: Queryable, id: string, set: string, params: unknown[]): Promise<VolumeRow> {
  const { rows: [row] } = await db.query<VolumeRow>(
    `UPDATE volumes SET ${set}, task_seq = task_seq + 1, state_changed_at = now() WHERE id = $1 RETURNING *`,
    [id, ...params],
  );
  return row!;
}

const busy = (v: VolumeRow) => new Ec2Error("IncorrectState", `The volume '${v.id}' is '${v.attachment_state ?? v.state}'${v.task ? ` (${v.task} in progress)` : ""}.`);

async function deleteVolume(ctx: RequestContext, req: compute.DeleteVolumeRequest): Promise<compute.DeleteVolumeResponse> {
  const row = await inTransaction(ctx.db, async (db) => {
    const v = await lockedVolume(ctx, db, req.VolumeId);
    if (v.instance_id) throw new Ec2Error("VolumeInUse", `Volume ${v.id} is currently attached to ${v.instance_id}`);
    if (v.task || (v.state !== "available" && v.state !== "error")) throw busy(v);
    return setTask(db, v.id, "state = 'deleting', task = 'delete'", []);
  });
  await handOff(ctx, volumeSteps([row]));
  ctx.log.info({ volumeId: row.id }, "volume deletion requested");
  return {};
}

/** The first virtio target the instance's volumes leave free. */
async function freeTarget(db: Queryable, instanceId: string): Promise<string> {
  const { rows } = await db.query<{ target: string }>("SELECT target FROM volumes WHERE instance_id = $1", [instanceId]);
  const taken = new Set(rows.map((r) => r.target));
  const target = VOLUME_TARGETS.find((t) => !taken.has(t));
  if (!target) throw new Ec2Error("AttachmentLimitExceeded", `Instance '${instanceId}' has ${VOLUME_TARGETS.length} volumes attached, the most it can have.`);
  return target;
}

async function attachVolume(ctx: RequestContext, req: compute.AttachVolumeRequest): Promise<compute.VolumeAttachment> {
  if (!req.Device) throw new Ec2Error("MissingParameter", "The request must contain the parameter Device");
  if (!req.InstanceId) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  requireIds(volumeKind, [req.VolumeId]);
  requireIds(instanceKind, [req.InstanceId]);
  if (req.Device === ROOT_DEVICE_NAME || !ATTACHABLE_DEVICE.test(req.Device)) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(req.Device)}) for parameter device is invalid. ${truncate(req.Device)} is not a valid EBS device name.`);
  }
  const row = await inTransaction(ctx.db, async (db) => {
    const v = await lockedVolume(ctx, db, req.VolumeId);
    const [i] = (await findOwned(ctx, db, instanceKind, [req.InstanceId], { lock: true })) as InstanceRow[];
    if (v.instance_id) throw new Ec2Error("VolumeInUse", `${v.id} is already attached to an instance`);
    if (v.task || v.state !== "available") throw busy(v);
    if ((i!.state !== "running" && i!.state !== "stopped") || i!.task) {
      throw new Ec2Error("IncorrectInstanceState", `Instance '${i!.id}' is not 'running' or 'stopped' (state: ${i!.state}${i!.task ? `, ${i!.task} in progress` : ""}).`);
    }
    if (i!.availability_zone !== v.availability_zone) {
      throw new Ec2Error("InvalidVolume.ZoneMismatch", `The volume '${v.id}' is not in the same availability zone as instance '${i!.id}'`);
    }
    const { rows: [clash] } = await db.query("SELECT 1 FROM volumes WHERE instance_id = $1 AND device = $2", [i!.id, req.Device]);
    if (clash) throw new Ec2Error("InvalidParameterValue", `Invalid value '${req.Device}' for unixDevice. Attachment point ${req.Device} is already in use`);
    const target = await freeTarget(db, i!.id);
    return setTask(db, v.id, "state = 'in-use', task = 'attach', instance_id = $2, device = $3, target = $4, attachment_state = 'attaching', attach_time = now(), delete_on_termination = false",
      [i!.id, req.Device, target]);
  });
  await handOff(ctx, volumeSteps([row]));
  ctx.log.info({ volumeId: row.id, instanceId: row.instance_id, device: row.device, target: row.target }, "volume attachment requested");
  return attachmentOf(row)!;
}

async function detachVolume(ctx: RequestContext, req: compute.DetachVolumeRequest): Promise<compute.VolumeAttachment> {
  requireIds(volumeKind, [req.VolumeId]);
  if (req.InstanceId) requireIds(instanceKind, [req.InstanceId]);
  const result = await inTransaction(ctx.db, async (db) => {
    const v = await lockedVolume(ctx, db, req.VolumeId);
    if (!v.instance_id) throw new Ec2Error("IncorrectState", `Volume '${v.id}' is in the '${v.state}' state.`);
    if ((req.InstanceId && req.InstanceId !== v.instance_id) || (req.Device && req.Device !== v.device)) {
      throw new Ec2Error("InvalidAttachment.NotFound", `The volume '${v.id}' is not attached to ${req.InstanceId ? `instance '${req.InstanceId}'` : ""}${req.InstanceId && req.Device ? " at " : ""}${req.Device ? `device '${truncate(req.Device)}'` : ""}.`);
    }
    if (v.attachment_state === "attaching") throw busy(v);
    // A detach already under way is the answer to a repeated one; Force makes it a forced one.
    if (v.attachment_state === "detaching" && (!req.Force || v.detach_force)) return { row: v, changed: false };
    return { row: await setTask(db, v.id, "task = 'detach', attachment_state = 'detaching', detach_force = $2", [req.Force]), changed: true };
  });
  if (result.changed) {
    await handOff(ctx, volumeSteps([result.row]));
    ctx.log.info({ volumeId: result.row.id, instanceId: result.row.instance_id, force: req.Force }, "volume detachment requested");
  }
  return attachmentOf(result.row)!;
}

export const volumeOperations: AnyOperation[] = [
  defineOperation<compute.CreateVolumeRequest, compute.Volume>({
    name: "CreateVolume", summary: "Create an EBS volume in an availability zone", request: compute.CreateVolumeRequest, response: compute.Volume,
    mutates: true, kinds: ["volume", "snapshot"], handler: createVolume,
  }),
  defineOperation<compute.DescribeVolumesRequest, compute.DescribeVolumesResponse>({
    name: "DescribeVolumes", summary: "Describe EBS volumes", request: compute.DescribeVolumesRequest, response: compute.DescribeVolumesResponse,
    mutates: false, kinds: ["volume"],
    handler: async (ctx, req) => {
      const page = await describeKind(ctx, volumeKind, { ids: req.VolumeIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken });
      return { Volumes: page.items, NextToken: page.nextToken };
    },
  }),
  defineOperation<compute.DeleteVolumeRequest, compute.DeleteVolumeResponse>({
    name: "DeleteVolume", summary: "Delete an EBS volume that is not attached", request: compute.DeleteVolumeRequest, response: compute.DeleteVolumeResponse,
    mutates: true, kinds: ["volume"], handler: deleteVolume,
  }),
  defineOperation<compute.AttachVolumeRequest, compute.VolumeAttachment>({
    name: "AttachVolume", summary: "Attach an EBS volume to a running or stopped instance", request: compute.AttachVolumeRequest, response: compute.VolumeAttachment,
    mutates: true, kinds: ["volume", "instance"], handler: attachVolume,
  }),
  defineOperation<compute.DetachVolumeRequest, compute.VolumeAttachment>({
    name: "DetachVolume", summary: "Detach an EBS volume from its instance", request: compute.DetachVolumeRequest, response: compute.VolumeAttachment,
    mutates: true, kinds: ["volume", "instance"], handler: detachVolume,
  }),
];
