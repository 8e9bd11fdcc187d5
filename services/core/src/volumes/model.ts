// The volume and snapshot kinds: their rows, states, Describe filters and API
// shapes. Each row carries its EC2 state and the step in flight (task,
// task_seq), as instances do; lifecycle.ts drives the steps.
import type { compute } from "@cirrus/proto";
import { Ec2Error } from "../errors.js";
import { defineKind } from "../resource.js";
import { readableBy, SNAPSHOT_GRANTS } from "../sharing.js";
import { loadTags } from "../tags.js";
import type { VolumeType } from "./types.js";

export type VolumeState = "creating" | "available" | "in-use" | "deleting" | "deleted" | "error";
export type VolumeTask = "create" | "delete" | "attach" | "detach" | "modify";
export type AttachmentState = "attaching" | "attached" | "detaching";

export interface VolumeRow {
  id: string;
  owner_id: string;
  availability_zone: string;
  size_gib: number;
  volume_type: VolumeType;
  iops: number | null;
  throughput: number | null;
  snapshot_id: string;
  encrypted: boolean;
  state: VolumeState;
  task: VolumeTask | null;
  task_seq: number;
  created_at: Date;
  instance_id: string | null;
  device: string | null;
  target: string | null;
  attachment_state: AttachmentState | null;
  attach_time: Date | null;
  delete_on_termination: boolean;
  detach_force: boolean;
  /** The latest modification (modify.ts): its state, and the volume's size, type, IOPS and throughput before and after. */
  mod_state: "modifying" | "completed" | "failed" | null;
  mod_message: string;
  mod_original: VolumeQualityRecord | null;
  mod_target: VolumeQualityRecord | null;
  mod_start_time: Date | null;
  mod_end_time: Date | null;
  row_seq: string;
}

/** What a modification records of a volume before and after it (jsonb). */
export interface VolumeQualityRecord {
  size: number;
  type: VolumeType;
  iops: number | null;
  throughput: number | null;
}

export type SnapshotState = "pending" | "completed" | "error" | "deleted";
export type SnapshotTask = "create" | "copy" | "delete";

export interface SnapshotRow {
  id: string;
  owner_id: string;
  volume_id: string;
  volume_size_gib: number;
  description: string;
  encrypted: boolean;
  source_snapshot_id: string | null;
  state: SnapshotState;
  task: SnapshotTask | null;
  task_seq: number;
  progress: number;
  state_message: string;
  start_time: Date;
  row_seq: string;
}

export function attachmentOf(v: VolumeRow): compute.VolumeAttachment | undefined {
  if (!v.instance_id || !v.attachment_state) return undefined;
  return {
    AttachTime: v.attach_time?.toISOString() ?? "", Device: v.device ?? "", InstanceId: v.instance_id, State: v.attachment_state,
    VolumeId: v.id, DeleteOnTermination: v.delete_on_termination,
  };
}

export function volumeToApi(v: VolumeRow, tags: compute.Tag[]): compute.Volume {
  const attachment = attachmentOf(v);
  return {
    Attachments: attachment ? [attachment] : [], AvailabilityZone: v.availability_zone, CreateTime: v.created_at.toISOString(),
    Encrypted: v.encrypted, Size: v.size_gib, SnapshotId: v.snapshot_id, State: v.state, VolumeId: v.id,
    Iops: v.iops ?? undefined, Tags: tags, VolumeType: v.volume_type, MultiAttachEnabled: false, Throughput: v.throughput ?? undefined,
  };
}

export const volumeKind = defineKind<VolumeRow, compute.Volume>({
  name: "volume",
  resourceType: "volume",
  idPrefix: "vol",
  malformed: "InvalidVolume.Malformed",
  table: "volumes",
  notFound: (ids) => new Ec2Error("InvalidVolume.NotFound", `The volume${ids.length > 1 ? "s" : ""} '${ids.join(", ")}' ${ids.length > 1 ? "do" : "does"} not exist.`),
  filters: {
    "volume-id": "volumes.id", "availability-zone": "volumes.availability_zone", size: "volumes.size_gib::text", "snapshot-id": "volumes.snapshot_id",
    status: "volumes.state", "volume-type": "volumes.volume_type", encrypted: "volumes.encrypted::text", "multi-attach-enabled": "'false'",
    "create-time": "to_char(volumes.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    "attachment.instance-id": "volumes.instance_id", "attachment.device": "volumes.device", "attachment.status": "volumes.attachment_state",
    "attachment.delete-on-termination": "CASE WHEN volumes.instance_id IS NULL THEN NULL ELSE volumes.delete_on_termination::text END",
    "attachment.attach-time": "to_char(volumes.attach_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
  },
  // A deleted volume is gone for the API, as in EC2.
  visible: () => "volumes.state <> 'deleted'",
  orderBy: "row_seq",
  toApi: async (ctx, rows) => {
    const tags = await loadTags(ctx.db, rows.map((r) => r.id));
    return rows.map((v) => volumeToApi(v, tags.get(v.id) ?? []));
  },
  states: ["creating", "available", "in-use", "deleting", "deleted", "error"],
});

export function snapshotToApi(s: SnapshotRow, tags: compute.Tag[]): compute.Snapshot {
  return {
    Description: s.description, Encrypted: s.encrypted, OwnerId: s.owner_id, Progress: `${s.progress}%`, SnapshotId: s.id,
    StartTime: s.start_time.toISOString(), State: s.state, StateMessage: s.state_message, VolumeId: s.volume_id, VolumeSize: s.volume_size_gib,
    Tags: tags, StorageTier: "standard",
  };
}

export const snapshotKind = defineKind<SnapshotRow, compute.Snapshot>({
  name: "snapshot",
  resourceType: "snapshot",
  idPrefix: "snap",
  malformed: "InvalidSnapshot.Malformed",
  table: "snapshots",
  notFound: (ids) => new Ec2Error("InvalidSnapshot.NotFound", `The snapshot${ids.length > 1 ? "s" : ""} '${ids.join(", ")}' ${ids.length > 1 ? "do" : "does"} not exist.`),
  filters: {
    "snapshot-id": "snapshots.id", "volume-id": "snapshots.volume_id", "volume-size": "snapshots.volume_size_gib::text", status: "snapshots.state",
    progress: "snapshots.progress::text || '%'", "owner-id": "snapshots.owner_id", description: "snapshots.description", encrypted: "snapshots.encrypted::text",
    "storage-tier": "'standard'", "start-time": "to_char(snapshots.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
  },
  visible: () => "snapshots.state <> 'deleted'",
  // Its own, and those shared with the caller or with every account (snapshotSharing.ts).
  readable: (ctx, params) => readableBy(SNAPSHOT_GRANTS, "snapshots", ctx.principal.accountId, params),
  orderBy: "row_seq",
  // Tags are their owner's: another account sees a shared snapshot without them.
  toApi: async (ctx, rows) => {
    const tags = await loadTags(ctx.db, rows.filter((r) => r.owner_id === ctx.principal.accountId).map((r) => r.id));
    return rows.map((s) => snapshotToApi(s, tags.get(s.id) ?? []));
  },
  states: ["pending", "completed", "error"],
});
