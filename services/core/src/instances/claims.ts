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
// ("add n instances where that still fits"). Every transaction that changes
// a host's books first takes that host's claim lock (a transaction-level
// advisory lock, hostClaimLock), so the books of one host change in one
// transaction at a time, and a launch can ask "is another launch changing
// this host?" without ever waiting (pg_try_advisory_xact_lock). Row locks
// cannot answer that: in Postgres 15 even SKIP LOCKED waits when it follows
// a row's update chain, which deadlocked concurrent launches planning
// around each other. A transaction waits for claim locks only while it
// holds none, taking them in key order in one statement, so waits never
// form a cycle. Two launches on different hosts never wait for each other;
// a launch plans around the hosts another holds, and a claim that no longer
// fits is reported, so the caller can re-plan elsewhere (run.ts decides
// when to wait instead).
import type { Logger } from "@cirrus/common";
import type { LifecycleStep } from "@cirrus/common/queue";
import type { Pool } from "pg";
import type { Queryable } from "../db/tx.js";
import { inTransaction } from "../db/tx.js";
import { releaseVolumes } from "../volumes/lifecycle.js";

/** What one instance takes from its host. */
export interface CapacityNeed {
  vcpus: number;
  memoryMib: number;
  diskGib: number;
}

/** The advisory lock class of host claim locks ("cirr"); the key is hashtext(host id), so two hosts may share one, which costs only a wait or a re-plan. */
const HOST_CLAIM_LOCK = 0x63697272;

/**
 * Takes the claim locks of these hosts, waiting for them, in key order.
 * Precondition: the transaction holds no claim lock yet (or holds exactly
 * these, taken by the same call).
 */
export async function waitForHostClaimLocks(db: Queryable, hostIds: readonly string[]): Promise<void> {
  if (hostIds.length === 0) return;
  await db.query(
    "SELECT pg_advisory_xact_lock($1, k) FROM (SELECT DISTINCT hashtext(h) AS k FROM unnest($2::text[]) AS h) keys ORDER BY k",
    [HOST_CLAIM_LOCK, hostIds],
  );
}

/** Takes the claim locks of those of these hosts no other transaction holds, without waiting; returns the hosts whose lock it now holds. */
async function tryHostClaimLocks(db: Queryable, hostIds: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    "SELECT h AS id FROM unnest($2::text[]) AS h WHERE pg_try_advisory_xact_lock($1, hashtext(h))",
    [HOST_CLAIM_LOCK, hostIds],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * The hosts whose claim lock another transaction holds now: launches plan
 * around them from the start rather than finding them busy one claim at a
 * time. A snapshot: a host can become busy or free right after.
 */
export async function busyHosts(db: Queryable): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT h.id FROM hosts h WHERE (hashtext(h.id)::bigint & 4294967295) IN (
       SELECT objid::bigint FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted AND pid <> pg_backend_pid()
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
    [HOST_CLAIM_LOCK],
  );
  return new Set(rows.map((r) => r.id));
}

/** What a claim left undone: hosts where it no longer fitted, and hosts another transaction is changing. */
export interface ClaimShortfall {
  full: string[];
  busy: string[];
}

/**
 * Claims `count` instances' worth of `need` on each host of `perHost`, for
 * every host where it still fits. With `wait`, it first waits for the
 * hosts' claim locks (precondition of waitForHostClaimLocks); without, a
 * host whose claim lock another transaction holds is left alone and
 * reported busy. Nothing is claimed on a host reported full or busy.
 * Postcondition: the transaction holds the claim lock of every host claimed.
 */
export async function claimCapacity(db: Queryable, perHost: ReadonlyMap<string, number>, need: CapacityNeed, opts: { wait?: boolean } = {}): Promise<ClaimShortfall> {
  if (perHost.size === 0) return { full: [], busy: [] };
  const ids = [...perHost.keys()];
  let locked: Set<string>;
  if (opts.wait) {
    await waitForHostClaimLocks(db, ids);
    locked = new Set(ids);
  } else {
    locked = await tryHostClaimLocks(db, ids);
  }
  const mine = ids.filter((id) => locked.has(id));
  const { rows } = await db.query<{ id: string }>(
    `UPDATE hosts h SET used_vcpus = h.used_vcpus + w.n * $3, used_memory_mib = h.used_memory_mib + w.n * $4, used_disk_gib = h.used_disk_gib + w.n * $5
       FROM unnest($1::text[], $2::int[]) AS w(id, n)
      WHERE h.id = w.id AND h.used_vcpus + w.n * $3 <= h.vcpus AND h.used_memory_mib + w.n * $4 <= h.memory_mib AND h.used_disk_gib + w.n * $5 <= h.disk_gib
      RETURNING h.id`,
    [mine, mine.map((id) => perHost.get(id)!), need.vcpus, need.memoryMib, need.diskGib],
  );
  const claimed = new Set(rows.map((r) => r.id));
  return { full: mine.filter((id) => !claimed.has(id)), busy: ids.filter((id) => !locked.has(id)) };
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
 * addresses stay allocated, as in EC2), and their volumes (releaseVolumes:
 * detached, or deleted when DeleteOnTermination). Preconditions: called
 * once, in the transaction that made them terminated, which holds no host
 * claim lock. Returns the volume steps for the caller to hand off after the
 * commit.
 */
export async function releaseInstances(db: Queryable, held: readonly HeldResources[]): Promise<LifecycleStep[][]> {
  if (held.length === 0) return [];
  const ids = held.map((h) => h.id);
  const volumeSteps = await releaseVolumes(db, ids);
  await releaseAddresses(db, ids);
  await db.query("UPDATE addresses SET association_id = NULL, instance_id = NULL, private_ip = NULL WHERE instance_id = ANY($1)", [ids]);
  const perHost = new Map<string, CapacityNeed>();
  for (const h of held) {
    if (!h.host_id) continue;
    const sum = perHost.get(h.host_id) ?? { vcpus: 0, memoryMib: 0, diskGib: 0 };
    perHost.set(h.host_id, { vcpus: sum.vcpus + h.vcpus, memoryMib: sum.memoryMib + h.memory_mib, diskGib: sum.diskGib + h.disk_gib });
  }
  const hosts = [...perHost.keys()].sort();
  await waitForHostClaimLocks(db, hosts);
  for (const id of hosts) {
    const n = perHost.get(id)!;
    await db.query(
      "UPDATE hosts SET used_vcpus = used_vcpus - $2, used_memory_mib = used_memory_mib - $3, used_disk_gib = used_disk_gib - $4 WHERE id = $1",
      [id, n.vcpus, n.memoryMib, n.diskGib],
    );
  }
  return volumeSteps;
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
 * transaction per host, holding its claim lock (as every claim and release
 * does until it commits), so a launch or terminate in flight on it either
 * committed its instances and its books before (and is counted) or changes
 * both after (and is not half-counted).
 */
export async function auditCapacity(db: Pool, log: Logger): Promise<CapacityDrift[]> {
  const { rows: hosts } = await db.query<{ id: string }>("SELECT id FROM hosts ORDER BY id");
  const drifts: CapacityDrift[] = [];
  for (const { id } of hosts) {
    const drift = await inTransaction(db, async (tx) => {
      await waitForHostClaimLocks(tx, [id]);
      const { rows: [h] } = await tx.query<{ vcpus: number; memory_mib: number; disk_gib: number }>(
        "SELECT used_vcpus AS vcpus, used_memory_mib AS memory_mib, used_disk_gib AS disk_gib FROM hosts WHERE id = $1",
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
