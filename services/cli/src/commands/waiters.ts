// The aws CLI's waiters (botocore's ec2 waiters-2.json) that Cirrus offers,
// as `--wait` on the commands that change a resource's state and as
// `cirrus wait <name>` (the aws CLI's `aws ec2 wait <name>`), with the
// Describe that observes each kind of resource.
import { compute } from "@cirrus/proto";
import type { ComputeApi } from "../client.js";
import { fetchAllPages, type ObserveFn, type WaitCommandSpec } from "../command.js";
import { ServiceError } from "../errors.js";
import type { ParamSpec } from "../params.js";
import type { Observation, Waiter } from "../wait.js";

type Noun = "instance" | "volume" | "snapshot";

/**
 * By the name of `aws ec2 wait`'s subcommand. The success state is
 * botocore's; the failure states are botocore's except where a comment says
 * otherwise: Cirrus also fails on states that only lead away from the target,
 * and never on one a legitimate path passes through. A resource that
 * vanishes fails every waiter but the two that wait for it to go (botocore:
 * the Describe's NotFound error ends the wait).
 */
export const WAITERS = {
  "instance-running": { name: "InstanceRunning", target: "running", failure: ["shutting-down", "terminated", "stopping"], goneIsDone: false, noun: "instance" },
  // botocore: pending, terminated; shutting-down too, since it only leads to terminated.
  "instance-stopped": { name: "InstanceStopped", target: "stopped", failure: ["pending", "shutting-down", "terminated"], goneIsDone: false, noun: "instance" },
  // botocore: pending, stopping; none, since terminating a pending or stopping instance passes through them.
  "instance-terminated": { name: "InstanceTerminated", target: "terminated", failure: [], goneIsDone: true, noun: "instance" },
  // botocore: deleted, which Cirrus never shows (a deleted volume is gone); deleting only leads there, and error (a failed create) is final.
  "volume-available": { name: "VolumeAvailable", target: "available", failure: ["deleting", "error"], goneIsDone: false, noun: "volume" },
  // As volume-available. In-use means attached: volumeState shows an attachment in flight instead.
  "volume-in-use": { name: "VolumeInUse", target: "in-use", failure: ["deleting", "error"], goneIsDone: false, noun: "volume" },
  // botocore: success on deleted or InvalidVolume.NotFound, no failure (Cirrus retries a delete until it is done).
  "volume-deleted": { name: "VolumeDeleted", target: "deleted", failure: [], goneIsDone: true, noun: "volume" },
  // botocore: error (the acceptor EC2 added in 2021, aws/aws-sdk-ruby#2587).
  "snapshot-completed": { name: "SnapshotCompleted", target: "completed", failure: ["error"], goneIsDone: false, noun: "snapshot" },
} as const satisfies Record<string, Waiter & { noun: Noun }>;

/**
 * attach-volume --wait: volume-in-use, failing also when the volume is
 * available again or detaching. After an accepted AttachVolume that means
 * the attach failed and was undone (or is being undone), which botocore's
 * waiter would sit out until its timeout.
 */
export const ATTACHED: Waiter = { ...WAITERS["volume-in-use"], failure: [...WAITERS["volume-in-use"].failure, "available", "detaching"] };

/**
 * The state the volume waiters judge: the attachment's while it is attaching
 * or detaching, else the volume's. A volume is in-use from the moment
 * AttachVolume is accepted, so without this a wait for in-use would end
 * before the guest has the disk.
 */
export function volumeState(v: compute.Volume): string {
  const attachment = v.Attachments[0]?.State;
  return attachment === "attaching" || attachment === "detaching" ? attachment : v.State;
}

/** How the waiters read one kind of resource. */
interface Kind<R> {
  /** Describes `ids`, every page; rejects with the ServiceError `notFound` when one of them is unknown. */
  describe(api: ComputeApi, ids: readonly string[]): Promise<R[]>;
  notFound: string;
  id(resource: R): string;
  observe(resource: R): Observation;
}

/** What a waiter saw of a resource, keeping the resource for the final output. */
export type Seen<R> = Observation & { resource: R };

/** Observes resources of one kind. */
export type Observe<R> = ObserveFn<Seen<R>>;

/** The waiter's view of a kind: a Describe of the ids, each asked for alone when one is unknown, to learn which are gone. */
function observer<R>(kind: Kind<R>): Observe<R> {
  const isNotFound = (err: unknown) => err instanceof ServiceError && err.code === kind.notFound;
  const one = (api: ComputeApi, id: string) => kind.describe(api, [id]).catch((err: unknown) => (isNotFound(err) ? [] : Promise.reject(err)));
  return async (api, ids) => {
    let found: R[];
    try {
      found = await kind.describe(api, ids);
    } catch (err) {
      // A Describe fails as a whole when one id is unknown.
      if (!isNotFound(err)) throw err;
      found = (await Promise.all(ids.map((id) => one(api, id)))).flat();
    }
    return new Map(found.map((r) => [kind.id(r), { ...kind.observe(r), resource: r }]));
  };
}

export const observeInstances = observer<compute.Instance>({
  describe: async (api, ids) => {
    const request = compute.DescribeInstancesRequest.fromPartial({ InstanceIds: [...ids] });
    return (await fetchAllPages(api, compute.ComputeService.describeInstances, request, "Reservations")).Reservations.flatMap((r) => r.Instances);
  },
  notFound: "InvalidInstanceID.NotFound",
  id: (i) => i.InstanceId,
  observe: (i) => ({ state: i.State?.Name ?? "", ...(i.StateReason?.Message ? { reason: i.StateReason.Message } : {}) }),
});

export const observeVolumes = observer<compute.Volume>({
  describe: async (api, ids) => {
    const request = compute.DescribeVolumesRequest.fromPartial({ VolumeIds: [...ids] });
    return (await fetchAllPages(api, compute.ComputeService.describeVolumes, request, "Volumes")).Volumes;
  },
  notFound: "InvalidVolume.NotFound",
  id: (v) => v.VolumeId,
  observe: (v) => ({ state: volumeState(v) }),
});

export const observeSnapshots = observer<compute.Snapshot>({
  describe: async (api, ids) => {
    const request = compute.DescribeSnapshotsRequest.fromPartial({ SnapshotIds: [...ids] });
    return (await fetchAllPages(api, compute.ComputeService.describeSnapshots, request, "Snapshots")).Snapshots;
  },
  notFound: "InvalidSnapshot.NotFound",
  id: (s) => s.SnapshotId,
  observe: (s) => ({ state: s.State, ...(s.StateMessage ? { reason: s.StateMessage } : {}) }),
});

/** Each kind's option naming what to wait for (`--volume-ids`, as in `aws ec2 wait`) and its observer. */
const KINDS: Record<Noun, { ids: ParamSpec; observe: Observe<unknown> }> = {
  instance: { ids: { flag: "instance-ids", kind: "string-list", required: true, description: "the instances to wait for" }, observe: observeInstances },
  volume: { ids: { flag: "volume-ids", kind: "string-list", required: true, description: "the volumes to wait for" }, observe: observeVolumes },
  snapshot: { ids: { flag: "snapshot-ids", kind: "string-list", required: true, description: "the snapshots to wait for" }, observe: observeSnapshots },
};

/** `cirrus wait <name>`: every waiter of the catalogue, on the ids given. */
export const WAIT_COMMANDS: WaitCommandSpec[] = Object.entries(WAITERS).map(([name, waiter]) => ({ name, waiter, ...KINDS[waiter.noun] }));
