// RunInstances: validate everything, then in one transaction claim the
// addresses, plan the placement on the hosts' current numbers, insert the
// instances and claim their hosts' capacity (claims.ts: a conditional update
// of just the chosen hosts, never a lock on every host). When a host filled
// up since the plan was made, or another launch holds it, its instances are
// planned again elsewhere (claimOrReplan).
// Nothing is written unless at least MinCount instances fit. After commit,
// one lifecycle job per host drives the launches.
import { newId } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import { planPlacement, type HostCapacity, type PlacementRequest } from "@cirrus/scheduler";
import type { PoolClient } from "pg";
import type { RequestContext } from "../context.js";
import { analyzeAfterBulkChange } from "../db/statistics.js";
import { inTransaction, type Queryable } from "../db/tx.js";
import { Ec2Error } from "../errors.js";
import { markHostsChanged } from "../hostState.js";
import { findLaunchableImage } from "../images.js";
import { instanceStoreOf } from "../instanceTypes.js";
import { insertLaunchVolumes, launchBlockDevices } from "./blockDevices.js";
import { findKeyPair } from "../keyPairs.js";
import { hostsNamingGroups } from "../network/affected.js";
import { resolveSubnet } from "../network/launch.js";
import { requireGroupsInVpc, securityGroupKind } from "../network/securityGroups.js";
import { subnetKind } from "../network/vpcs.js";
import { defineOperation } from "../operation.js";
import { deleteTagsOf, insertTags, loadTags } from "../tags.js";
import { requestHash, requireClientToken, requireIds, tagsFor, truncate } from "../validate.js";
import { busyHosts, claimAddresses, claimCapacity, releaseAddresses, type CapacityNeed } from "./claims.js";
import { enqueueInstanceSteps, type StepTarget } from "./lifecycle.js";
import { blockDevicesByInstance, instanceKind, type AttachedVolume, loadExtras, toReservations, type InstanceRow } from "./model.js";

export const MAX_INSTANCES_PER_CALL = 100_000;
const MAX_USER_DATA_BYTES = 16 * 1024;
export const DEFAULT_INSTANCE_TYPE = "t2.micro";
/** Plans after the first, when hosts fill up between plan and claim, before the rest counts as not placeable. */
const MAX_REPLANS = 8;

function requireCount(name: string, value: number | undefined): number {
  if (value === undefined) throw new Ec2Error("MissingParameter", `The request must contain the parameter ${name}`);
  if (!Number.isInteger(value) || value < 1 || value > MAX_INSTANCES_PER_CALL) {
    throw new Ec2Error("InvalidParameterValue", `Value (${value}) for parameter ${name} is invalid. Expected an integer from 1 to ${MAX_INSTANCES_PER_CALL}.`);
  }
  return value;
}

function requireUserData(userData: string): void {
  if (!userData) return;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(userData) || userData.length % 4 !== 0) {
    throw new Ec2Error("InvalidParameterValue", "Invalid BASE64 encoding of user data.");
  }
  if (Buffer.byteLength(userData, "base64") > MAX_USER_DATA_BYTES) {
    throw new Ec2Error("InvalidParameterValue", `User data is limited to ${MAX_USER_DATA_BYTES} bytes`);
  }
}

async function reservationById(db: Queryable, reservationId: string): Promise<compute.Reservation> {
  const { rows } = await db.query<InstanceRow>("SELECT * FROM instances WHERE reservation_id = $1 ORDER BY launch_index", [reservationId]);
  const [res] = toReservations(rows, await loadExtras(db, rows.map((r) => r.id)));
  if (!res) throw new Ec2Error("InternalError", "Reservation has no instances");
  return res;
}

/** The reservation of an earlier call with the same token; IdempotentParameterMismatch if the parameters differ. */
async function previousRun(db: Queryable, ctx: RequestContext, req: compute.RunInstancesRequest, hash: string): Promise<compute.Reservation | undefined> {
  const { rows } = await db.query<{ request_hash: string; reservation_id: string }>(
    "SELECT request_hash, reservation_id FROM run_requests WHERE owner_id = $1 AND client_token = $2",
    [ctx.principal.accountId, req.ClientToken],
  );
  const prev = rows[0];
  if (!prev) return undefined;
  if (prev.request_hash !== hash) {
    throw new Ec2Error("IdempotentParameterMismatch", `The client token '${truncate(req.ClientToken)}' was already used with different parameters`);
  }
  return reservationById(db, prev.reservation_id);
}

/** Where a launch goes: its zone and, once known, its subnet. */
interface Where {
  zone: string | undefined;
  subnetId?: string;
}

/**
 * The hosts holding instances of subnets other than `subnetId` whose ranges
 * overlap it. One host routes one copy of an address range (its bridges
 * share its routing table), and every account's default VPC is
 * 172.31.0.0/16, as in EC2: such hosts cannot take an instance of this
 * subnet. Usually no subnet overlaps, and nothing more is read.
 */
async function hostsServingOverlaps(db: Queryable, subnetId: string): Promise<string[]> {
  const { rows: overlapping } = await db.query<{ id: string }>(
    "SELECT other.id FROM subnets other JOIN subnets mine ON mine.id = $1 WHERE other.id <> mine.id AND other.cidr && mine.cidr", [subnetId]);
  if (overlapping.length === 0) return [];
  const { rows } = await db.query<{ host_id: string }>(
    "SELECT DISTINCT host_id FROM instances WHERE subnet_id = ANY($1) AND state <> 'terminated' AND host_id IS NOT NULL", [overlapping.map((r) => r.id)]);
  return rows.map((r) => r.host_id);
}

/** Where a launch goes: its zone and, once its subnet is known, the hosts that cannot serve that subnet (hostsServingOverlaps). */
interface Where {
  zone: string | undefined;
  excluded?: readonly string[];
}

/**
 * The candidate hosts' current numbers, unlocked: a plan is checked by the
 * claim, not by holding rows. Two launches into overlapping subnets of
 * different VPCs at the very same moment can still both pick an empty host
 * (docs/ARCHITECTURE.md, RunInstances).
 */
async function candidateHosts(db: Queryable, ctx: RequestContext, where: Where): Promise<HostCapacity[]> {
  const { rows } = await db.query<HostCapacity>(
    `SELECT h.id, h.availability_zone AS "availabilityZone", h.vcpus, h.memory_mib AS "memoryMib", h.disk_gib AS "diskGib",
            h.used_vcpus AS "usedVcpus", h.used_memory_mib AS "usedMemoryMib", h.used_disk_gib AS "usedDiskGib",
            coalesce(b.last_heartbeat_at > now() - $1 * interval '1 millisecond', false) AS alive
       FROM hosts h LEFT JOIN host_heartbeats b ON b.host_id = h.id
      WHERE h.retired_at IS NULL AND ($2::text IS NULL OR h.availability_zone = $2) AND NOT (h.id = ANY($3::text[]))`,
    [ctx.config.CIRRUS_HOST_DEAD_AFTER_MS, where.zone ?? null, where.excluded ?? []],
  );
  return rows;
}

/** A random order among hosts whose scores tie, fixed for one call: concurrent launches then spread over different hosts. */
function randomTieBreak(): (hostId: string) => number {
  const rank = new Map<string, number>();
  return (id) => {
    let r = rank.get(id);
    if (r === undefined) rank.set(id, (r = Math.random()));
    return r;
  };
}

function countPerHost(hostIds: readonly string[]): Map<string, number> {
  const perHost = new Map<string, number>();
  for (const h of hostIds) perHost.set(h, (perHost.get(h) ?? 0) + 1);
  return perHost;
}

/**
 * Claims capacity for `placement` (instance id → host id, rows already
 * inserted), planning again for the instances whose host filled up or is
 * held by another launch in flight. Returns where each placed instance is
 * now; the others could be placed nowhere (their rows still exist; the
 * caller removes them). Postcondition: every placed instance's host has its
 * capacity claimed in this transaction, and its row's host_id names that
 * host.
 *
 * Claims never wait while this transaction holds a host's claim lock
 * (claims.ts), so concurrent launches plan around each other's hosts
 * instead of queueing for them. Only when hosts held elsewhere are the only
 * ones with room left does the launch wait for them: it gives back what it
 * claimed and the locks with it (a savepoint), plans everything afresh and
 * claims again, waiting for the busy hosts while holding none.
 */
async function claimOrReplan(db: PoolClient, ctx: RequestContext, placement: ReadonlyMap<string, string>, need: CapacityNeed, want: PlacementRequest, where: Where): Promise<Map<string, string>> {
  await db.query("SAVEPOINT claims");
  const first = await claimAround(db, ctx, placement, need, want, where, false);
  if (!first.heldElsewhere) return first.placed;
  await db.query("ROLLBACK TO SAVEPOINT claims");
  ctx.log.info({ instances: placement.size }, "only hosts held by launches in flight have room: waiting for them");
  const ids = [...placement.keys()];
  const plan = planPlacement(await candidateHosts(db, ctx, where), { ...want, maxCount: ids.length, availabilityZone: where.zone }, { tieBreak: randomTieBreak() });
  const fresh = new Map(plan.hostIds.map((h, i) => [ids[i]!, h]));
  await moveInstances(db, fresh);
  return (await claimAround(db, ctx, fresh, need, want, where, true)).placed;
}

async function moveInstances(db: Queryable, placement: ReadonlyMap<string, string>): Promise<void> {
  if (placement.size === 0) return;
  await db.query("UPDATE instances i SET host_id = p.h FROM unnest($1::text[], $2::text[]) AS p(id, h) WHERE i.id = p.id", [[...placement.keys()], [...placement.values()]]);
}

/**
 * One round of claims and re-plans for `placement`: each claim skips hosts
 * other transactions are changing (except the first when `waitFirst`), and
 * the instances that did not fit are planned again around every host found
 * busy. Returns where the instances placed are, and whether hosts held
 * elsewhere were among those the rest could not get.
 */
async function claimAround(db: PoolClient, ctx: RequestContext, placement: ReadonlyMap<string, string>, need: CapacityNeed, want: PlacementRequest, where: Where, waitFirst: boolean): Promise<{ placed: Map<string, string>; heldElsewhere: boolean }> {
  const placed = new Map(placement);
  let pending: ReadonlyMap<string, string> = placement;
  const elsewhere = new Set<string>();
  for (let attempt = 0; pending.size > 0; attempt++) {
    const { full, busy } = await claimCapacity(db, countPerHost([...pending.values()]), need, { wait: waitFirst && attempt === 0 });
    for (const h of busy) elsewhere.add(h);
    const short = new Set([...full, ...busy]);
    const victims = [...pending.keys()].filter((id) => short.has(pending.get(id)!));
    if (victims.length === 0) break;
    for (const id of victims) placed.delete(id);
    if (attempt === MAX_REPLANS) break;
    for (const h of await busyHosts(db)) elsewhere.add(h);
    const hosts = (await candidateHosts(db, ctx, where)).filter((h) => !elsewhere.has(h.id));
    const plan = planPlacement(hosts, { ...want, maxCount: victims.length, availabilityZone: where.zone }, { tieBreak: randomTieBreak() });
    ctx.log.debug({ conflicts: victims.length, replanned: plan.hostIds.length, busyHosts: elsewhere.size, attempt }, "hosts filled up or busy during the launch: planned again");
    pending = new Map(plan.hostIds.map((h, i) => [victims[i]!, h]));
    for (const [id, h] of pending) placed.set(id, h);
    await moveInstances(db, pending);
  }
  return { placed, heldElsewhere: placed.size < placement.size && elsewhere.size > 0 };
}

async function runInstances(ctx: RequestContext, req: compute.RunInstancesRequest): Promise<compute.Reservation> {
  const minCount = requireCount("MinCount", req.MinCount);
  const maxCount = requireCount("MaxCount", req.MaxCount);
  if (minCount > maxCount) throw new Ec2Error("InvalidParameterValue", `MinCount (${minCount}) must be less than or equal to MaxCount (${maxCount})`);
  const typeName = req.InstanceType || DEFAULT_INSTANCE_TYPE;
  const type = ctx.instanceTypes.get(typeName);
  if (!type) throw new Ec2Error("InvalidParameterValue", `Invalid value '${truncate(typeName)}' for InstanceType.`);
  if (req.SubnetId) requireIds(subnetKind, [req.SubnetId]);
  requireIds(securityGroupKind, req.SecurityGroupIds);
  requireClientToken(req.ClientToken);
  requireUserData(req.UserData);
  const zone = req.Placement?.AvailabilityZone || undefined;
  if (zone && !ctx.config.zones.includes(zone)) throw new Ec2Error("InvalidParameterValue", `Invalid availability zone: [${truncate(zone)}]`);
  const tags = tagsFor("instance", req.TagSpecifications, ["instance"]);
  const shutdownBehavior = req.InstanceInitiatedShutdownBehavior || "stop";
  if (shutdownBehavior !== "stop" && shutdownBehavior !== "terminate") {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(shutdownBehavior)}) for parameter instanceInitiatedShutdownBehavior is invalid. Valid values are: stop, terminate.`);
  }
  const image = await findLaunchableImage(ctx, req.ImageId);
  const devices = await launchBlockDevices(ctx, req.BlockDeviceMappings, image, type);
  const key = req.KeyName ? await findKeyPair(ctx, req.KeyName) : undefined;

  const hash = requestHash(req);
  if (req.ClientToken) {
    const prev = await previousRun(ctx.db, ctx, req, hash);
    if (prev) return prev;
  }

  // Instance store lives on the host beside the root disk.
  const instanceStore = instanceStoreOf(type);
  const diskGib = devices.rootGib + instanceStore.reduce((n, d) => n + d.sizeGib, 0);
  const need: CapacityNeed = { vcpus: type.vcpus, memoryMib: type.memoryMib, diskGib };
  const want: PlacementRequest = { ...need, maxCount, strategy: ctx.config.CIRRUS_PLACEMENT_STRATEGY };
  const insufficient = (placeable: number) => new Ec2Error("InsufficientInstanceCapacity",
    `We currently do not have sufficient ${typeName} capacity${zone ? ` in the Availability Zone you requested (${zone})` : ""}. Placeable now: ${placeable} of the ${minCount} requested.`);
  const reservationId = newId("r");
  const done = await ctx.placements(() => inTransaction(ctx.db, async (db): Promise<{ previous: compute.Reservation } | { reservation: compute.Reservation; steps: StepTarget[]; hosts: string[] }> => {
    if (req.ClientToken) {
      const ins = await db.query(
        "INSERT INTO run_requests (owner_id, client_token, request_hash, reservation_id) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
        [ctx.principal.accountId, req.ClientToken, hash, reservationId],
      );
      // A concurrent call with the same token committed first (the INSERT
      // waited for it): answer with its reservation.
      if (ins.rowCount === 0) {
        const previous = await previousRun(db, ctx, req, hash);
        if (!previous) throw new Ec2Error("InternalError", "Client token conflict could not be resolved");
        return { previous };
      }
    }
    const zoneHosts = await candidateHosts(db, ctx, { zone });
    const tieBreak = randomTieBreak();
    // A reservation lives in one zone: the subnet's, the requested one, or the one the scheduler would start in.
    const subnet = await resolveSubnet(db, ctx, req.SubnetId, zone, () => {
      const first = planPlacement(zoneHosts, { ...want, maxCount: 1 }, { tieBreak }).hostIds[0];
      if (!first) throw insufficient(0);
      return zoneHosts.find((h) => h.id === first)!.availabilityZone;
    });
    const where: Where = { zone: subnet.availability_zone, excluded: await hostsServingOverlaps(db, subnet.id) };
    const hosts = await candidateHosts(db, ctx, where);
    const groups = await requireGroupsInVpc(db, ctx, req.SecurityGroupIds.length ? req.SecurityGroupIds : [subnet.default_group_id], subnet.vpc_id);
    const groupIds = groups.map((g) => g.GroupId);
    const ids = Array.from({ length: maxCount }, () => newId("i"));
    const addresses = await claimAddresses(db, subnet.id, ids);
    if (addresses.length < minCount) {
      throw new Ec2Error("InsufficientFreeAddressesInSubnet", `There are not enough free addresses in subnet '${subnet.id}' to satisfy the requested number of instances (${addresses.length} free, ${minCount} requested).`);
    }
    // Around the hosts other launches are claiming on, unless only they have room enough.
    const wanted = { ...want, maxCount: addresses.length, availabilityZone: subnet.availability_zone };
    const busy = await busyHosts(db);
    const around = planPlacement(hosts.filter((h) => !busy.has(h.id)), wanted, { tieBreak });
    const plan = around.hostIds.length === addresses.length ? around : planPlacement(hosts, wanted, { tieBreak });
    if (plan.hostIds.length < minCount) {
      ctx.log.info({ requested: minCount, placeable: plan.hostIds.length, rejections: plan.rejections }, "insufficient capacity");
      throw insufficient(plan.hostIds.length);
    }
    const launched = ids.slice(0, plan.hostIds.length);
    // Give back the addresses claimed for instances that did not fit.
    await releaseAddresses(db, ids.slice(plan.hostIds.length));
    const ipOf = new Map(addresses.map((a) => [a.instanceId, a.ip]));
    const { rows: inserted } = await db.query<InstanceRow>(
      `INSERT INTO instances (id, reservation_id, owner_id, image_id, instance_type, vcpus, memory_mib, disk_gib, host_id,
                              availability_zone, state, task, launch_index, client_token, user_data,
                              vpc_id, subnet_id, private_ip, key_name, public_key, shutdown_behavior, instance_store)
       SELECT p.id, $3, $4, $5, $6, $7, $8, $9, p.host_id, $12, 'pending', 'launch', p.idx - 1, $10, $11,
              $13, $14, p.ip::inet, $15, $16, $18, $19
         FROM unnest($1::text[], $2::text[], $17::text[]) WITH ORDINALITY AS p(id, host_id, ip, idx) ORDER BY p.idx
       RETURNING *`,
      [launched, plan.hostIds, reservationId, ctx.principal.accountId, image.id, typeName, type.vcpus, type.memoryMib, diskGib,
        req.ClientToken, req.UserData, subnet.availability_zone, subnet.vpc_id, subnet.id, key?.name ?? "", key?.publicKey ?? "",
        launched.map((id) => ipOf.get(id)), shutdownBehavior, JSON.stringify(instanceStore)],
    );
    await db.query(
      "INSERT INTO instance_security_groups (instance_id, group_id) SELECT i, g FROM unnest($1::text[]) AS i, unnest($2::text[]) AS g",
      [launched, groupIds],
    );
    await insertTags(db, ctx.principal.accountId, instanceKind.resourceType, launched, tags);
    // New members change the firewalls of instances whose rules name their groups, wherever they run.
    const naming = await hostsNamingGroups(db, groupIds);
    // The capacity claim comes last, so the chosen hosts stay held only until the commit.
    const placed = await claimOrReplan(db, ctx, new Map(launched.map((id, i) => [id, plan.hostIds[i]!])), need, want, where);
    if (placed.size < minCount) throw insufficient(placed.size);
    const unplaceable = launched.filter((id) => !placed.has(id));
    if (unplaceable.length) {
      await releaseAddresses(db, unplaceable);
      await deleteTagsOf(db, unplaceable);
      await db.query("DELETE FROM instance_security_groups WHERE instance_id = ANY($1)", [unplaceable]);
      await db.query("DELETE FROM instances WHERE id = ANY($1)", [unplaceable]);
    }
    const rows = inserted.filter((r) => placed.has(r.id)).sort((a, b) => a.launch_index - b.launch_index);
    const volumes = await insertLaunchVolumes(db, ctx.principal.accountId, subnet.availability_zone, rows.map((r) => r.id), devices.volumes);
    // The reservation as inserted: every instance has the same tags (as stored, in key order) and groups.
    const stored = tags.length ? (await loadTags(db, [rows[0]!.id])).get(rows[0]!.id)! : [];
    const [reservation] = toReservations(rows, {
      tags: new Map(rows.map((r) => [r.id, stored])),
      publicIps: new Map(),
      groups: new Map(rows.map((r) => [r.id, groups])),
      // Launch volumes are attaching from their insert on: every attachment column is set.
      volumes: blockDevicesByInstance(volumes as AttachedVolume[]),
    });
    return {
      reservation: reservation!,
      steps: rows.map((r) => ({ id: r.id, task_seq: r.task_seq, host_id: placed.get(r.id)! })),
      hosts: await markHostsChanged(db, [...placed.values(), ...naming]),
    };
  }));
  if ("previous" in done) return done.previous;
  await enqueueInstanceSteps(ctx, done.steps);
  // Before the pushes, so that their compiles are planned on the new rows.
  await analyzeAfterBulkChange(ctx, done.steps.length, ["instances", "instance_security_groups", "subnet_addresses"]);
  ctx.notifyHosts(done.hosts);
  ctx.log.info({ reservationId, count: done.steps.length, imageId: image.id, instanceType: typeName }, "instances placed");
  return done.reservation;
}

export const runInstancesOperation = defineOperation({
  name: "RunInstances",
  summary: "Launch instances from an image",
  request: compute.RunInstancesRequest,
  response: compute.Reservation,
  mutates: true,
  kinds: ["instance", "image", "subnet", "security-group", "key-pair"],
  handler: runInstances,
});
