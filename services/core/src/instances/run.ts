// RunInstances: validate everything, then place and insert all instances in
// one transaction that locks the candidate hosts and re-checks their capacity,
// then hand each launch to the workers. Nothing is written unless at least
// MinCount instances fit.
import { createHash } from "node:crypto";
import { Ec2Error, newId } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import { planPlacement, type HostCapacity } from "@cirrus/scheduler";
import type { PoolClient } from "pg";
import type { DomainContext } from "../context.js";
import { inTransaction } from "../../db/tx.js";
import { findAvailableImage } from "../images.js";
import { findKeyPair } from "../keyPairs.js";
import { claimAddresses, resolveSubnet } from "../network/launch.js";
import { requireGroupsInVpc } from "../network/securityGroups.js";
import { insertTags } from "../tags.js";
import { requireIds, tagsFor, truncate } from "../validate.js";
import { loadExtras, toReservations, type InstanceRow } from "./model.js";

export const MAX_INSTANCES_PER_CALL = 100_000;
const MAX_USER_DATA_BYTES = 16 * 1024;
export const DEFAULT_INSTANCE_TYPE = "t2.micro";

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

/** Hash of everything but the token, to detect a token reused for a different request. */
function requestHash(req: compute.RunInstancesRequest): string {
  const { ClientToken: _token, ...rest } = req;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex");
}

async function reservationById(db: PoolClient | DomainContext["pool"], reservationId: string): Promise<compute.Reservation> {
  const { rows } = await db.query<InstanceRow>("SELECT * FROM instances WHERE reservation_id = $1 ORDER BY launch_index", [reservationId]);
  const [res] = toReservations(rows, await loadExtras(db, rows.map((r) => r.id)));
  if (!res) throw new Ec2Error("InternalError", "Reservation has no instances");
  return res;
}

/** The reservation of an earlier call with the same token; IdempotentParameterMismatch if the parameters differ. */
async function previousRun(db: PoolClient | DomainContext["pool"], ctx: DomainContext, req: compute.RunInstancesRequest, hash: string): Promise<compute.Reservation | undefined> {
  const { rows } = await db.query<{ request_hash: string; reservation_id: string }>(
    "SELECT request_hash, reservation_id FROM run_requests WHERE owner_id = $1 AND client_token = $2",
    [ctx.config.CIRRUS_ACCOUNT_ID, req.ClientToken],
  );
  const prev = rows[0];
  if (!prev) return undefined;
  if (prev.request_hash !== hash) {
    throw new Ec2Error("IdempotentParameterMismatch", `The client token '${truncate(req.ClientToken)}' was already used with different parameters`);
  }
  return reservationById(db, prev.reservation_id);
}

interface HostRow {
  id: string;
  availability_zone: string;
  alive: boolean;
  vcpus: number;
  memory_mib: number;
  disk_gib: number;
  used_vcpus: number;
  used_memory_mib: number;
  used_disk_gib: number;
}

export async function runInstances(ctx: DomainContext, req: compute.RunInstancesRequest): Promise<compute.Reservation> {
  const minCount = requireCount("MinCount", req.MinCount);
  const maxCount = requireCount("MaxCount", req.MaxCount);
  if (minCount > maxCount) throw new Ec2Error("InvalidParameterValue", `MinCount (${minCount}) must be less than or equal to MaxCount (${maxCount})`);
  const typeName = req.InstanceType || DEFAULT_INSTANCE_TYPE;
  const type = ctx.instanceTypes.get(typeName);
  if (!type) throw new Ec2Error("InvalidParameterValue", `Invalid value '${truncate(typeName)}' for InstanceType.`);
  if (req.SubnetId) requireIds("subnet", [req.SubnetId]);
  requireIds("sg", req.SecurityGroupIds);
  if (req.ClientToken.length > 64 || !/^[\x21-\x7e]*$/.test(req.ClientToken)) {
    throw new Ec2Error("InvalidParameterValue", "ClientToken must be at most 64 printable ASCII characters");
  }
  requireUserData(req.UserData);
  const zone = req.Placement?.AvailabilityZone || undefined;
  if (zone && !ctx.config.zones.includes(zone)) throw new Ec2Error("InvalidParameterValue", `Invalid availability zone: [${truncate(zone)}]`);
  const tags = tagsFor("instance", req.TagSpecifications, ["instance"]);
  const image = await findAvailableImage(ctx, req.ImageId);
  const key = req.KeyName ? await findKeyPair(ctx, req.KeyName) : undefined;

  const hash = requestHash(req);
  if (req.ClientToken) {
    const prev = await previousRun(ctx.pool, ctx, req, hash);
    if (prev) return prev;
  }

  const reservationId = newId("r");
  const placed = await inTransaction(ctx.pool, async (db): Promise<{ previous: compute.Reservation } | { ids: string[]; hosts: string[] }> => {
    if (req.ClientToken) {
      const ins = await db.query(
        "INSERT INTO run_requests (owner_id, client_token, request_hash, reservation_id) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
        [ctx.config.CIRRUS_ACCOUNT_ID, req.ClientToken, hash, reservationId],
      );
      // A concurrent call with the same token committed first (the INSERT
      // waited for it): answer with its reservation.
      if (ins.rowCount === 0) {
        const previous = await previousRun(ctx.pool, ctx, req, hash);
        if (!previous) throw new Ec2Error("InternalError", "Client token conflict could not be resolved");
        return { previous };
      }
    }
    // Lock every candidate host (in id order, so concurrent launches cannot
    // deadlock) and place on the locked, current numbers.
    const { rows: hosts } = await db.query<HostRow>(
      `SELECT id, availability_zone, vcpus, memory_mib, disk_gib, used_vcpus, used_memory_mib, used_disk_gib,
              coalesce(last_heartbeat_at > now() - $1 * interval '1 millisecond', false) AS alive
         FROM hosts WHERE ($2::text IS NULL OR availability_zone = $2) ORDER BY id FOR UPDATE`,
      [ctx.config.CIRRUS_HOST_DEAD_AFTER_MS, zone ?? null],
    );
    const want = { vcpus: type.vcpus, memoryMib: type.memoryMib, diskGib: image.root_size_gib, strategy: ctx.config.CIRRUS_PLACEMENT_STRATEGY };
    const insufficient = (placeable: number, where?: string) => new Ec2Error("InsufficientInstanceCapacity",
      `We currently do not have sufficient ${typeName} capacity${where ? ` in the Availability Zone you requested (${where})` : ""}. Placeable now: ${placeable} of the ${minCount} requested.`);
    // A reservation lives in one zone: the subnet's, the requested one, or the one the scheduler would start in.
    const subnet = await resolveSubnet(db, ctx, req.SubnetId, zone, () => {
      const first = planPlacement(hosts.map(toCapacity), { ...want, maxCount: 1 }).hostIds[0];
      if (!first) throw insufficient(0);
      return hosts.find((h) => h.id === first)!.availability_zone;
    });
    const groupIds = req.SecurityGroupIds.length ? await requireGroupsInVpc(db, ctx, req.SecurityGroupIds, subnet.vpc_id) : [subnet.default_group_id];
    const ids = Array.from({ length: maxCount }, () => newId("i"));
    const addresses = await claimAddresses(db, subnet.id, ids);
    if (addresses.length < minCount) {
      throw new Ec2Error("InsufficientFreeAddressesInSubnet", `There are not enough free addresses in subnet '${subnet.id}' to satisfy the requested number of instances (${addresses.length} free, ${minCount} requested).`);
    }
    const plan = planPlacement(hosts.map(toCapacity), { ...want, maxCount: addresses.length, availabilityZone: subnet.availability_zone });
    if (plan.hostIds.length < minCount) {
      ctx.log.info({ requested: minCount, placeable: plan.hostIds.length, rejections: plan.rejections }, "insufficient capacity");
      throw insufficient(plan.hostIds.length, zone);
    }
    const launched = ids.slice(0, plan.hostIds.length);
    // Give back the addresses claimed for instances that did not fit.
    await db.query("UPDATE subnet_addresses SET instance_id = NULL WHERE instance_id = ANY($1)", [ids.slice(plan.hostIds.length)]);
    const perHost = new Map<string, number>();
    for (const h of plan.hostIds) perHost.set(h, (perHost.get(h) ?? 0) + 1);
    await db.query(
      `UPDATE hosts h SET used_vcpus = used_vcpus + n * $3, used_memory_mib = used_memory_mib + n * $4, used_disk_gib = used_disk_gib + n * $5
         FROM unnest($1::text[], $2::int[]) AS p(id, n) WHERE h.id = p.id`,
      [[...perHost.keys()], [...perHost.values()], type.vcpus, type.memoryMib, image.root_size_gib],
    );
    const ipOf = new Map(addresses.map((a) => [a.instanceId, a.ip]));
    await db.query(
      `INSERT INTO instances (id, reservation_id, owner_id, image_id, instance_type, vcpus, memory_mib, disk_gib, host_id,
                              availability_zone, state, task, launch_index, client_token, user_data,
                              vpc_id, subnet_id, private_ip, key_name, public_key)
       SELECT p.id, $3, $4, $5, $6, $7, $8, $9, p.host_id, $12, 'pending', 'launch', p.idx - 1, $10, $11,
              $13, $14, p.ip::inet, $15, $16
         FROM unnest($1::text[], $2::text[], $17::text[]) WITH ORDINALITY AS p(id, host_id, ip, idx) ORDER BY p.idx`,
      [launched, plan.hostIds, reservationId, ctx.config.CIRRUS_ACCOUNT_ID, image.id, typeName, type.vcpus, type.memoryMib, image.root_size_gib,
        req.ClientToken, req.UserData, subnet.availability_zone, subnet.vpc_id, subnet.id, key?.name ?? "", key?.publicKey ?? "",
        launched.map((id) => ipOf.get(id))],
    );
    await db.query(
      "INSERT INTO instance_security_groups (instance_id, group_id) SELECT i, g FROM unnest($1::text[]) AS i, unnest($2::text[]) AS g",
      [launched, groupIds],
    );
    await insertTags(db, launched, tags);
    return { ids: launched, hosts: [...perHost.keys()] };
  });
  if ("previous" in placed) return placed.previous;
  await ctx.enqueue(placed.ids.map((instanceId) => ({ instanceId, seq: 1 })));
  // New members change the firewalls of instances whose rules name their groups.
  ctx.notifyHosts(placed.hosts);
  ctx.log.info({ reservationId, count: placed.ids.length, imageId: image.id, instanceType: typeName }, "instances placed");
  return reservationById(ctx.pool, reservationId);
}

function toCapacity(h: HostRow): HostCapacity {
  return {
    id: h.id, availabilityZone: h.availability_zone, alive: h.alive, vcpus: h.vcpus, memoryMib: h.memory_mib, diskGib: h.disk_gib,
    usedVcpus: h.used_vcpus, usedMemoryMib: h.used_memory_mib, usedDiskGib: h.used_disk_gib,
  };
}
