// The volume and snapshot lifecycles. As the instance's (instances/
// lifecycle.ts): a step re-reads its row, does nothing if its task_seq moved
// on, calls a host agent (whose storage calls are idempotent by id) and
// finishes with a compare-and-swap on (id, task_seq).
//
// Which host: the stores are shared (every host of a zone mounts its volume
// store, every host of the region the snapshot store), so work that names no
// instance goes to any live host of the volume's zone (a snapshot's delete
// or copy: of the region); work on an attached volume goes to its
// instance's host, which holds the guest.
import type { LifecycleStep } from "@cirrus/common/queue";
import type { agent } from "@cirrus/proto";
import type { Core, HostEndpoint } from "../context.js";
import { inTransaction, type Queryable } from "../db/tx.js";
import type { Lifecycle, StepResult } from "../lifecycle.js";
import { deleteTagsOf } from "../tags.js";
import type { SnapshotRow, VolumeRow } from "./model.js";
import { iotuneOf } from "./types.js";

const VOLUME = "volume";
const SNAPSHOT = "snapshot";

/** The steps for volumes whose task was just set (one batch: volume steps are few and each names its own host). */
export function volumeSteps(rows: readonly { id: string; task_seq: number }[]): LifecycleStep[][] {
  return rows.length ? [rows.map((r) => ({ kind: VOLUME, id: r.id, seq: r.task_seq }))] : [];
}

export function snapshotSteps(rows: readonly { id: string; task_seq: number }[]): LifecycleStep[][] {
  return rows.length ? [rows.map((r) => ({ kind: SNAPSHOT, id: r.id, seq: r.task_seq }))] : [];
}

/** A retry will do: no live host to work on, or the work must wait for another step. */
class NotYet extends Error {}

/**
 * A live host that mounts the store of `zone` (any zone when undefined), at
 * random so storage work spreads; NotYet when there is none.
 */
async function storageHost(core: Core, zone: string | undefined): Promise<HostEndpoint> {
  const { rows: [host] } = await core.db.query<HostEndpoint>(
    `SELECT h.id, h.endpoint, h.secret FROM hosts h JOIN host_heartbeats b ON b.host_id = h.id
      WHERE h.retired_at IS NULL AND b.last_heartbeat_at > now() - $1 * interval '1 millisecond' AND ($2::text IS NULL OR h.availability_zone = $2)
      ORDER BY random() LIMIT 1`,
    [core.config.CIRRUS_HOST_DEAD_AFTER_MS, zone ?? null],
  );
  if (!host) throw new NotYet(`no live host${zone ? ` in ${zone}` : ""} to reach the volume store`);
  return host;
}

/** The host an instance was placed on. */
async function instanceHost(db: Queryable, instanceId: string): Promise<HostEndpoint> {
  const { rows: [host] } = await db.query<HostEndpoint>(
    "SELECT h.id, h.endpoint, h.secret FROM instances i JOIN hosts h ON h.id = i.host_id WHERE i.id = $1",
    [instanceId],
  );
  if (!host) throw new NotYet(`instance ${instanceId} has no host`);
  return host;
}

/** Runs each current step's host work, then `finish` for the ones that succeeded; the rest are failed results. */
async function runSteps<Row extends { id: string; task: string | null; task_seq: number }>(
  core: Core, steps: readonly LifecycleStep[], load: (ids: string[]) => Promise<Map<string, Row>>,
  work: (row: Row) => Promise<void>, finish: (row: Row) => Promise<boolean>,
): Promise<StepResult[]> {
  const rows = await load(steps.map((s) => s.id));
  const results: StepResult[] = [];
  for (const step of steps) {
    const row = rows.get(step.id);
    if (!row || !row.task || row.task_seq !== step.seq) {
      results.push({ step, outcome: "superseded" });
      continue;
    }
    try {
      await work(row);
      results.push({ step, outcome: (await finish(row)) ? "done" : "superseded" });
    } catch (error) {
      results.push({ step, outcome: "failed", error, permanent: !(error instanceof NotYet) && core.agents.isPermanent(error) });
    }
  }
  return results;
}

async function loadVolumes(db: Queryable, ids: readonly string[]): Promise<Map<string, VolumeRow>> {
  const { rows } = await db.query<VolumeRow>("SELECT * FROM volumes WHERE id = ANY($1)", [ids]);
  return new Map(rows.map((r) => [r.id, r]));
}

/** What an attachment needs of a volume's row. */
export type AttachedVolumeRow = Pick<VolumeRow, "id" | "target" | "volume_type" | "size_gib" | "iops" | "throughput" | "snapshot_id">;

/** What the agent attaches: the volume at its target with its type's QoS. */
export function volumeAttachmentOf(v: AttachedVolumeRow): agent.VolumeAttachment {
  return {
    volumeId: v.id, target: v.target!,
    qos: iotuneOf({ type: v.volume_type, sizeGiB: v.size_gib, iops: v.iops ?? undefined, throughput: v.throughput ?? undefined }),
  };
}

async function volumeWork(core: Core, v: VolumeRow): Promise<void> {
  switch (v.task!) {
    case "create":
      await core.agents.createVolume(await storageHost(core, v.availability_zone), { volumeId: v.id, sizeGib: v.size_gib, snapshotId: v.snapshot_id });
      return;
    case "delete": {
      // The store reads the volume while a snapshot of it is taken.
      const { rows: [pending] } = await core.db.query("SELECT 1 FROM snapshots WHERE volume_id = $1 AND task = 'create'", [v.id]);
      if (pending) throw new NotYet(`a snapshot of ${v.id} is being taken`);
      await core.agents.deleteVolume(await storageHost(core, v.availability_zone), v.id);
      return;
    }
    case "attach":
      await core.agents.attachVolume(await instanceHost(core.db, v.instance_id!), v.instance_id!, volumeAttachmentOf(v));
      return;
    case "detach":
      await core.agents.detachVolume(await instanceHost(core.db, v.instance_id!), { instanceId: v.instance_id!, volumeId: v.id, force: v.detach_force, waitMs: 0 });
      return;
    case "modify": {
      // An attached volume is grown and re-tuned by its instance's host, live when the guest runs.
      const t = v.mod_target!;
      const host = v.instance_id ? await instanceHost(core.db, v.instance_id) : await storageHost(core, v.availability_zone);
      const qos = iotuneOf({ type: t.type, sizeGiB: t.size, iops: t.iops ?? undefined, throughput: t.throughput ?? undefined });
      await core.agents.modifyVolume(host, { volumeId: v.id, sizeGib: t.size, instanceId: v.instance_id ?? "", qos });
      return;
    }
  }
}

/** A volume without its attachment. */
const DETACHED = "instance_id = NULL, device = NULL, target = NULL, attachment_state = NULL, attach_time = NULL, detach_force = false, delete_on_termination = false";

/** Where each finished task leaves the volume (a compare-and-swap on id and task_seq). */
const VOLUME_DONE: Record<NonNullable<VolumeRow["task"]>, string> = {
  create: "state = 'available'",
  delete: "state = 'deleted', deleted_at = now()",
  attach: "attachment_state = 'attached'",
  detach: `state = 'available', ${DETACHED}`,
  modify: `size_gib = (mod_target->>'size')::int, volume_type = mod_target->>'type', iops = (mod_target->>'iops')::int,
           throughput = (mod_target->>'throughput')::int, mod_state = 'completed', mod_end_time = now()`,
};

async function finishVolume(core: Core, v: VolumeRow): Promise<boolean> {
  return inTransaction(core.db, async (db) => {
    const { rowCount } = await db.query(
      `UPDATE volumes SET ${VOLUME_DONE[v.task!]}, task = NULL, state_message = '', state_changed_at = now() WHERE id = $1 AND task_seq = $2 AND task IS NOT NULL`,
      [v.id, v.task_seq],
    );
    if (rowCount && v.task === "delete") await deleteTagsOf(db, [v.id]);
    if (rowCount) core.log.info({ volumeId: v.id, task: v.task }, "volume step done");
    return rowCount === 1;
  });
}

export const volumeLifecycle: Lifecycle = {
  kind: VOLUME,
  run: (core, steps) => runSteps(core, steps, (ids) => loadVolumes(core.db, ids), (v) => volumeWork(core, v), (v) => finishVolume(core, v)),

  async fail(core, steps, reason) {
    const rows = await loadVolumes(core.db, steps.map((s) => s.id));
    for (const s of steps) {
      const v = rows.get(s.id);
      if (!v || v.task_seq !== s.seq || !v.task) continue;
      core.log.error({ volumeId: v.id, task: v.task, reason }, "volume step failed for good");
      if (v.task === "create") {
        await core.db.query("UPDATE volumes SET state = 'error', task = NULL, state_message = $3, state_changed_at = now() WHERE id = $1 AND task_seq = $2", [v.id, s.seq, reason]);
      } else if (v.task === "modify") {
        // The volume keeps what it had; the modification says why it failed.
        await core.db.query("UPDATE volumes SET task = NULL, mod_state = 'failed', mod_message = $3, mod_end_time = now(), state_changed_at = now() WHERE id = $1 AND task_seq = $2", [v.id, s.seq, reason]);
      } else if (v.task === "attach") {
        // Undo what the host may have done, then the volume is available again; if the undo fails the attachment stays, detaching, for the sweeper.
        const undone = await instanceHost(core.db, v.instance_id!)
          .then((host) => core.agents.detachVolume(host, { instanceId: v.instance_id!, volumeId: v.id, force: true, waitMs: 0 }))
          .then(() => true, () => false);
        await core.db.query(
          `UPDATE volumes SET ${undone ? VOLUME_DONE.detach : "attachment_state = 'detaching', task = 'detach', task_seq = task_seq + 1"}, ${undone ? "task = NULL, " : ""}state_message = $3, state_changed_at = now()
            WHERE id = $1 AND task_seq = $2`,
          [v.id, s.seq, reason],
        );
      }
      // A delete or detach is never given up: it stays in flight and the sweeper retries it.
    }
  },

  stale: (core, olderThanMs, limit, after) => staleSteps(core, "volumes", olderThanMs, limit, after, volumeSteps),
};

/** Steps in flight older than `olderThanMs` of a kind's table (see Lifecycle.stale). */
async function staleSteps(core: Core, table: "volumes" | "snapshots", olderThanMs: number, limit: number, after: string,
  batches: (rows: { id: string; task_seq: number }[]) => LifecycleStep[][]): Promise<{ batches: LifecycleStep[][]; last?: string }> {
  const { rows } = await core.db.query<{ id: string; task_seq: number }>(
    `SELECT id, task_seq FROM ${table} WHERE task IS NOT NULL AND id > $3 AND state_changed_at < now() - $1 * interval '1 millisecond' ORDER BY id LIMIT $2`,
    [olderThanMs, limit, after],
  );
  return { batches: batches(rows), last: rows.length === limit ? rows.at(-1)!.id : undefined };
}

interface SnapshotStepRow extends SnapshotRow {
  /** The volume's zone and attachment (null for a copy, whose volume_id is a placeholder). */
  availability_zone: string | null;
  instance_id: string | null;
}

async function loadSnapshots(db: Queryable, ids: readonly string[]): Promise<Map<string, SnapshotStepRow>> {
  const { rows } = await db.query<SnapshotStepRow>(
    `SELECT s.*, v.availability_zone, v.instance_id FROM snapshots s LEFT JOIN volumes v ON v.id = s.volume_id AND s.task = 'create' WHERE s.id = ANY($1)`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

async function snapshotWork(core: Core, s: SnapshotStepRow): Promise<agent.SnapshotStatus | undefined> {
  switch (s.task!) {
    case "create": {
      // An attached volume is snapshotted by its instance's host, live when the guest runs.
      const host = s.instance_id ? await instanceHost(core.db, s.instance_id) : await storageHost(core, s.availability_zone ?? undefined);
      return (await core.agents.createSnapshot(host, { volumeId: s.volume_id, snapshotId: s.id, instanceId: s.instance_id ?? "" })) as agent.SnapshotStatus;
    }
    case "copy":
      return (await core.agents.copySnapshot(await storageHost(core, undefined), { sourceSnapshotId: s.source_snapshot_id!, snapshotId: s.id })) as agent.SnapshotStatus;
    case "delete":
      await core.agents.deleteSnapshot(await storageHost(core, undefined), s.id);
      return undefined;
  }
}

async function finishSnapshot(core: Core, s: SnapshotStepRow, status: agent.SnapshotStatus | undefined): Promise<boolean> {
  return inTransaction(core.db, async (db) => {
    const set = s.task === "delete" ? "deleted_at = now()" : "state = 'completed', progress = 100, stored_bytes = $3";
    const { rowCount } = await db.query(
      `UPDATE snapshots SET ${set}, task = NULL, state_changed_at = now() WHERE id = $1 AND task_seq = $2 AND task IS NOT NULL`,
      s.task === "delete" ? [s.id, s.task_seq] : [s.id, s.task_seq, Number(status?.storedBytes ?? 0)],
    );
    if (rowCount && s.task === "delete") await deleteTagsOf(db, [s.id]);
    if (rowCount) core.log.info({ snapshotId: s.id, task: s.task, storedBytes: status ? Number(status.storedBytes) : undefined }, "snapshot step done");
    return rowCount === 1;
  });
}

export const snapshotLifecycle: Lifecycle = {
  kind: SNAPSHOT,
  async run(core, steps) {
    const statuses = new Map<string, agent.SnapshotStatus | undefined>();
    return runSteps(core, steps, (ids) => loadSnapshots(core.db, ids),
      async (s) => void statuses.set(s.id, await snapshotWork(core, s)),
      (s) => finishSnapshot(core, s, statuses.get(s.id)));
  },

  async fail(core, steps, reason) {
    for (const s of steps) {
      // A failed snapshot or copy is `error` with the reason; a delete is never given up (the sweeper retries it).
      const { rowCount } = await core.db.query(
        "UPDATE snapshots SET state = 'error', task = NULL, state_message = $3, state_changed_at = now() WHERE id = $1 AND task_seq = $2 AND task IN ('create', 'copy')",
        [s.id, s.seq, reason],
      );
      core.log.error({ snapshotId: s.id, reason, settled: rowCount === 1 }, "snapshot step failed for good");
    }
  },

  stale: (core, olderThanMs, limit, after) => staleSteps(core, "snapshots", olderThanMs, limit, after, snapshotSteps),
};

/** A volume a launch made for its instance that never got attached (the launch failed): it goes whatever its DeleteOnTermination. */
const LAUNCH_VOLUME_UNATTACHED = "(attachment_state = 'attaching' AND task IS NULL)";

/**
 * For instances terminated in this transaction: their volumes are detached
 * (the domain is gone, so nothing holds them), and those marked
 * DeleteOnTermination, or made by a launch that failed, are deleted. Any
 * volume step in flight for them is superseded. Returns the delete steps to
 * hand off after the commit.
 */
export async function releaseVolumes(db: Queryable, instanceIds: readonly string[]): Promise<LifecycleStep[][]> {
  if (instanceIds.length === 0) return [];
  const goes = `(delete_on_termination OR ${LAUNCH_VOLUME_UNATTACHED})`;
  const { rows } = await db.query<{ id: string; task_seq: number; task: string | null }>(
    `UPDATE volumes SET ${DETACHED}, task_seq = task_seq + 1, state_changed_at = now(),
            state = CASE WHEN ${goes} THEN 'deleting' ELSE 'available' END, task = CASE WHEN ${goes} THEN 'delete' END
      WHERE instance_id = ANY($1) RETURNING id, task_seq, task`,
    [instanceIds],
  );
  return volumeSteps(rows.filter((r) => r.task === "delete"));
}
