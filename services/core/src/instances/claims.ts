// What an instance holds while it exists: capacity on its host and a private
// address in its subnet (and, while associated, an elastic IP). Every path
// claims and releases through this module, always inside the transaction
// that creates the instance or makes it terminated, so the books always
// match the instances: RunInstances claims (run.ts); a terminate or a failed
// launch releases, exactly once, in the transaction whose compare-and-swap
// made the instance terminated (lifecycle.ts). `auditCapacity` checks the
// books against the instances and repairs any drift.
//
// Host capacity is claimed without a global lock, in the way of OpenStack
// Placement: the claim is a conditional update of just the chosen hosts
// ("add n instances where that still fits"), taking their row locks in id
// order (no deadlocks) only for the rest of the claiming transaction. The
// locks are FOR NO KEY UPDATE, which does not conflict with the key-share
// locks that inserting instances (foreign key to hosts) takes. Two
// launches on different hosts never wait for each other; two on the same
// host wait only for the other's commit, and a claim that no longer fits is
// reported so the caller can re-plan elsewhere.
import type { Logger } from "@cirrus/common";
import type { Pool } from "pg";
import type { Queryable } from "../db/tx.js";
import { inTransaction } from "../db/tx.js";

/** What one instance takes from its host. */
export interface CapacityNeed {
  vcpus: number;
  memoryMib: number;
  diskGib: number;
}

/**
 * Claims `count` instances' worth of `need` on each host of `perHost`, for
 * every host where it still fits. Returns the hosts whose claim did not fit
 * (nothing was claimed on those). Locks the claimed hosts' rows until the
 * transaction ends. With `skipLocked`, a host another transaction holds is
 * not waited for but reported as not fitting: a transaction that already
 * holds host rows must never wait for more (that is how deadlocks start),
 * so only its first claim waits.
 */
export async function claimCapacity(db: Queryable, perHost: ReadonlyMap<string, number>, need: CapacityNeed, opts: { skipLocked?: boolean } = {}): Promise<string[]> {
  if (perHost.size === 0) return [];
  const { rows } = await db.query<{ id: string }>(
    `WITH want AS (SELECT * FROM unnest($1::text[], $2::int[]) AS w(id, n)),
          fits AS (
            SELECT h.id, w.n FROM hosts h JOIN want w ON w.id = h.id
             WHERE h.used_vcpus + w.n * $3 <= h.vcpus AND h.used_memory_mib + w.n * $4 <= h.memory_mib AND h.used_disk_gib + w.n * $5 <= h.disk_gib
             ORDER BY h.id FOR NO KEY UPDATE OF h${opts.skipLocked ? " SKIP LOCKED" : ""})
     UPDATE hosts h SET used_vcpus = h.used_vcpus + f.n * $3, used_memory_mib = h.used_memory_mib + f.n * $4, used_disk_gib = h.used_disk_gib + f.n * $5
       FROM fits f WHERE h.id = f.id RETURNING h.id`,
    [[...perHost.keys()], [...perHost.values()], need.vcpus, need.memoryMib, need.diskGib],
  );
  const claimed = new Set(rows.map((r) => r.id));
  return [...perHost.keys()].filter((id) => !claimed.has(id));
}

/** Those of `hostIds` another transaction holds now (found without waiting; the others are locked by this one afterwards). */
export async function hostsHeldElsewhere(db: Queryable, hostIds: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>("SELECT id FROM hosts WHERE id = ANY($1) FOR NO KEY UPDATE SKIP LOCKED", [hostIds]);
  const free = new Set(rows.map((r) => r.id));
  return hostIds.filter((id) => !free.has(id));
}

/**
 * Claims up to ids.length free addresses of the subnet, the i-th for ids[i].
 * SKIP LOCKED lets concurrent launches claim different addresses without
 * waiting; the primary key makes a double assignment impossible. Returns the
 * claims in id order (possibly fewer than asked).
 */
export async function claimAddresses(db: Queryable, subnetId: string, ids: readonly string[]): Promise<{ instanceId: string; ip: string }[]> {
  const { rows } = await db.query<{ instance_id: string; ip: string }>(
    `WITH free AS (
       SELECT ip, row_number() OVER (ORDER BY ip) AS n FROM (
         SELECT ip FROM subnet_addresses WHERE subnet_id = $1 AND instance_id IS NULL ORDER BY ip LIMIT $2 FOR UPDATE SKIP LOCKED
       ) f
     ), wanted AS (SELECT id, n FROM unnest($3::text[]) WITH ORDINALITY AS w(id, n))
     UPDATE subnet_addresses a SET instance_id = wanted.id
       FROM free JOIN wanted USING (n) WHERE a.subnet_id = $1 AND a.ip = free.ip
     RETURNING a.instance_id, host(a.ip) AS ip`,
    [subnetId, ids.length, ids],
  );
  const order = new Map(ids.map((id, i) => [id, i]));
  return rows.map((r) => ({ instanceId: r.instance_id, ip: r.ip })).sort((a, b) => order.get(a.instanceId)! - order.get(b.instanceId)!);
}

/** Gives back the private addresses claimed for these (instance) ids. */
export async function releaseAddresses(db: Queryable, instanceIds: readonly string[]): Promise<void> {
  if (instanceIds.length) await db.query("UPDATE subnet_addresses SET instance_id = NULL WHERE instance_id = ANY($1)", [instanceIds]);
}

/** An instance that has just become terminated, with what it held. */
export interface HeldResources {
  id: string;
  host_id: string | null;
  vcpus: number;
  memory_mib: number;
  disk_gib: number;
}

/**
 * Releases what these instances held: their hosts' capacity (host rows in id
 * order), their private addresses, and their elastic IPs' associations (the
 * addresses stay allocated, as in EC2). Precondition: called once, in the
 * transaction that made them terminated.
 */
export async function releaseInstances(db: Queryable, held: readonly HeldResources[]): Promise<void> {
  if (held.length === 0) return;
  const ids = held.map((h) => h.id);
  await releaseAddresses(db, ids);
  await db.query("UPDATE addresses SET association_id = NULL, instance_id = NULL, private_ip = NULL WHERE instance_id = ANY($1)", [ids]);
  const perHost = new Map<string, CapacityNeed>();
  for (const h of held) {
    if (!h.host_id) continue;
    const sum = perHost.get(h.host_id) ?? { vcpus: 0, memoryMib: 0, diskGib: 0 };
    perHost.set(h.host_id, { vcpus: sum.vcpus + h.vcpus, memoryMib: sum.memoryMib + h.memory_mib, diskGib: sum.diskGib + h.disk_gib });
  }
  const hosts = [...perHost.keys()].sort();
  for (const id of hosts) {
    const n = perHost.get(id)!;
    await db.query(
      "UPDATE hosts SET used_vcpus = used_vcpus - $2, used_memory_mib = used_memory_mib - $3, used_disk_gib = used_disk_gib - $4 WHERE id = $1",
      [id, n.vcpus, n.memoryMib, n.diskGib],
    );
  }
}

/** A host's recorded usage against what its instances hold. */
export interface CapacityDrift {
  hostId: string;
  recorded: CapacityNeed;
  actual: CapacityNeed;
}

/** The drift between a host's books and its instances, or undefined when they agree. Pure. */
export function capacityDrift(hostId: string, recorded: CapacityNeed, actual: CapacityNeed): CapacityDrift | undefined {
  const same = recorded.vcpus === actual.vcpus && recorded.memoryMib === actual.memoryMib && recorded.diskGib === actual.diskGib;
  return same ? undefined : { hostId, recorded, actual };
}

/**
 * Recomputes every host's used capacity from its non-terminated instances,
 * logs each drift and repairs it; returns the drifts found. One short
 * transaction per host: its row is locked first (as a claim or release
 * locks it, which every path does last before committing), so a launch or
 * terminate in flight on it either committed its instances and its books
 * before (and is counted) or changes both after (and is not half-counted).
 */
export async function auditCapacity(db: Pool, log: Logger): Promise<CapacityDrift[]> {
  const { rows: hosts } = await db.query<{ id: string }>("SELECT id FROM hosts ORDER BY id");
  const drifts: CapacityDrift[] = [];
  for (const { id } of hosts) {
    const drift = await inTransaction(db, async (tx) => {
      const { rows: [h] } = await tx.query<{ vcpus: number; memory_mib: number; disk_gib: number }>(
        "SELECT used_vcpus AS vcpus, used_memory_mib AS memory_mib, used_disk_gib AS disk_gib FROM hosts WHERE id = $1 FOR NO KEY UPDATE",
        [id],
      );
      if (!h) return undefined;
      const { rows: [sum] } = await tx.query<{ vcpus: number; memory_mib: number; disk_gib: number }>(
        `SELECT coalesce(sum(vcpus), 0)::int AS vcpus, coalesce(sum(memory_mib), 0)::int AS memory_mib, coalesce(sum(disk_gib), 0)::int AS disk_gib
           FROM instances WHERE host_id = $1 AND state <> 'terminated'`,
        [id],
      );
      const d = capacityDrift(id, { vcpus: h.vcpus, memoryMib: h.memory_mib, diskGib: h.disk_gib }, { vcpus: sum!.vcpus, memoryMib: sum!.memory_mib, diskGib: sum!.disk_gib });
      if (d) await tx.query("UPDATE hosts SET used_vcpus = $2, used_memory_mib = $3, used_disk_gib = $4 WHERE id = $1", [id, d.actual.vcpus, d.actual.memoryMib, d.actual.diskGib]);
      return d;
    });
    if (drift) {
      log.warn({ hostId: id, recorded: drift.recorded, actual: drift.actual }, "host capacity drifted from its instances; repaired");
      drifts.push(drift);
    }
  }
  return drifts;
}
