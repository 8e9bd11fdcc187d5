// DescribeVolumeStatus: whether each volume can do I/O. Cirrus has no
// background checks of a volume's health, so the status follows its state:
// an available or in-use volume is ok (I/O enabled), one that failed to be
// made is impaired, one being made has no data yet. It schedules no events
// and asks for no actions.
import { compute } from "@cirrus/proto";
import { describeKind } from "../describe.js";
import { defineOperation, type AnyOperation } from "../operation.js";
import { defineKind } from "../resource.js";
import { volumeKind, type VolumeRow, type VolumeState } from "./model.js";

/** A volume's status and its io-enabled check, by its state; the one table both the answer and the filters read. */
const STATUS: Record<VolumeState, { status: string; io: string }> = {
  creating: { status: "insufficient-data", io: "insufficient-data" },
  error: { status: "impaired", io: "failed" },
  available: { status: "ok", io: "passed" },
  "in-use": { status: "ok", io: "passed" },
  deleting: { status: "ok", io: "passed" },
  deleted: { status: "ok", io: "passed" },
};

/** SQL mapping volumes.state through STATUS to one of its fields. */
function byState(field: "status" | "io"): string {
  return `CASE volumes.state ${Object.entries(STATUS).map(([state, s]) => `WHEN '${state}' THEN '${s[field]}'`).join(" ")} END`;
}

function statusOf(v: VolumeRow): compute.VolumeStatusItem {
  const { status, io } = STATUS[v.state];
  return {
    Actions: [], AvailabilityZone: v.availability_zone, Events: [], VolumeId: v.id,
    VolumeStatus: { Status: status, Details: [{ Name: "io-enabled", Status: io }, { Name: "io-performance", Status: "not-applicable" }] },
  };
}

/** The volume kind as DescribeVolumeStatus sees it: its own filters and answer shape. */
const volumeStatusView = defineKind<VolumeRow, compute.VolumeStatusItem>({
  ...volumeKind,
  filters: {
    "availability-zone": "volumes.availability_zone", "volume-status.status": byState("status"),
    "volume-status.details-name": "'io-enabled'", "volume-status.details-status": byState("io"),
  },
  toApi: async (_ctx, rows) => rows.map(statusOf),
});

export const volumeStatusOperations: AnyOperation[] = [
  defineOperation<compute.DescribeVolumeStatusRequest, compute.DescribeVolumeStatusResponse>({
    name: "DescribeVolumeStatus", summary: "Describe whether EBS volumes can do I/O", request: compute.DescribeVolumeStatusRequest, response: compute.DescribeVolumeStatusResponse,
    mutates: false, kinds: ["volume"], filters: Object.keys(volumeStatusView.filters),
    handler: async (ctx, req) => {
      const page = await describeKind(ctx, volumeStatusView, { ids: req.VolumeIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken });
      return { VolumeStatuses: page.items, NextToken: page.nextToken };
    },
  }),
];
