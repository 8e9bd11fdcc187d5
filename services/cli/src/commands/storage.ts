// The volume and snapshot commands' customizations (see customizations.ts):
// --wait with the aws CLI's VolumeAvailable, VolumeInUse, VolumeDeleted and
// SnapshotCompleted waiters, table views, and copy-snapshot's
// DestinationRegion, which the aws CLI fills in itself.
import type { compute } from "@cirrus/proto";
import type { WaitSpec } from "../command.js";
import { grid, type Columns } from "../output.js";
import type { Waiter } from "../wait.js";
import { nameTag, type Customization } from "./customizations.js";
import { ATTACHED, observeSnapshots, observeVolumes, WAITERS, type Observe, type Seen } from "./waiters.js";

const VOLUME_COLUMNS: Columns<compute.Volume> = {
  VolumeId: (v) => v.VolumeId,
  State: (v) => v.State,
  Size: (v) => v.Size,
  VolumeType: (v) => v.VolumeType,
  AvailabilityZone: (v) => v.AvailabilityZone,
  InstanceId: (v) => v.Attachments[0]?.InstanceId,
  Device: (v) => v.Attachments[0]?.Device,
  Attachment: (v) => v.Attachments[0]?.State,
  Name: (v) => nameTag(v.Tags),
};

const ATTACHMENT_COLUMNS: Columns<compute.VolumeAttachment> = {
  VolumeId: (a) => a.VolumeId,
  InstanceId: (a) => a.InstanceId,
  Device: (a) => a.Device,
  State: (a) => a.State,
  AttachTime: (a) => a.AttachTime,
};

const SNAPSHOT_COLUMNS: Columns<compute.Snapshot> = {
  SnapshotId: (s) => s.SnapshotId,
  State: (s) => s.State,
  Progress: (s) => s.Progress,
  VolumeId: (s) => s.VolumeId,
  VolumeSize: (s) => s.VolumeSize,
  StartTime: (s) => s.StartTime,
  Description: (s) => s.Description,
  Name: (s) => nameTag(s.Tags),
};

/** --wait where the response is the resource itself (create-volume, create-snapshot): it is printed as last seen. */
function waitForItself<R>(waiter: Waiter, idOf: (r: R) => string, observe: Observe<R>): WaitSpec<unknown, R, Seen<R>> {
  return { waiter, ids: (_req, res) => [idOf(res)], observe, finalize: (res, seen) => seen.get(idOf(res))?.resource ?? res };
}

/**
 * --wait on attach-volume and detach-volume: the attachment is printed as
 * last seen, and as detached once the volume no longer has it (EC2's name for
 * that state; a Describe shows no attachment at all).
 */
function waitOnAttachment(waiter: Waiter): WaitSpec<unknown, compute.VolumeAttachment, Seen<compute.Volume>> {
  return {
    waiter,
    ids: (_req, res) => [res.VolumeId],
    observe: observeVolumes,
    finalize: (res, seen) => {
      const volume = seen.get(res.VolumeId)?.resource;
      if (!volume) return res;
      return volume.Attachments.find((a) => a.InstanceId === res.InstanceId) ?? { ...res, State: "detached" };
    },
  };
}

const attachmentTable = (res: compute.VolumeAttachment) => grid([res], ATTACHMENT_COLUMNS);

export const STORAGE_CUSTOMIZATIONS: Record<string, Customization> = {
  "create-volume": {
    table: (res: compute.Volume) => grid([res], VOLUME_COLUMNS),
    wait: waitForItself<compute.Volume>(WAITERS["volume-available"], (v) => v.VolumeId, observeVolumes),
  },
  "describe-volumes": { table: (res: compute.DescribeVolumesResponse) => grid(res.Volumes, VOLUME_COLUMNS) },
  "describe-volume-status": {
    table: (res: compute.DescribeVolumeStatusResponse) =>
      grid(res.VolumeStatuses, {
        VolumeId: (s) => s.VolumeId,
        AvailabilityZone: (s) => s.AvailabilityZone,
        Status: (s) => s.VolumeStatus?.Status,
        IoEnabled: (s) => s.VolumeStatus?.Details.find((d) => d.Name === "io-enabled")?.Status,
      }),
  },
  "attach-volume": { table: attachmentTable, wait: waitOnAttachment(ATTACHED) },
  "detach-volume": { table: attachmentTable, wait: waitOnAttachment(WAITERS["volume-available"]) },
  "delete-volume": {
    wait: {
      waiter: WAITERS["volume-deleted"],
      // The response is empty, so the volume is the one asked for.
      ids: (req: compute.DeleteVolumeRequest) => [req.VolumeId],
      observe: observeVolumes,
      finalize: (res: compute.DeleteVolumeResponse) => res,
    } satisfies WaitSpec<compute.DeleteVolumeRequest, compute.DeleteVolumeResponse, Seen<compute.Volume>>,
  },
  "create-snapshot": {
    table: (res: compute.Snapshot) => grid([res], SNAPSHOT_COLUMNS),
    wait: waitForItself<compute.Snapshot>(WAITERS["snapshot-completed"], (s) => s.SnapshotId, observeSnapshots),
  },
  "describe-snapshots": { table: (res: compute.DescribeSnapshotsResponse) => grid(res.Snapshots, SNAPSHOT_COLUMNS) },
  "copy-snapshot": {
    // The aws CLI (botocore's inject_presigned_url_ec2) sends the region it
    // signs for unless one is given. It also makes a PresignedUrl, which only
    // a cross-region copy needs: a Cirrus cloud has one region, and the
    // server does not read it.
    prepare: (fields, { region }) => ({ DestinationRegion: region, ...fields }),
    wait: {
      waiter: WAITERS["snapshot-completed"],
      ids: (_req: unknown, res: compute.CopySnapshotResponse) => [res.SnapshotId],
      observe: observeSnapshots,
      // The response holds no state to update.
      finalize: (res: compute.CopySnapshotResponse) => res,
    } satisfies WaitSpec<unknown, compute.CopySnapshotResponse, Seen<compute.Snapshot>>,
  },
};
