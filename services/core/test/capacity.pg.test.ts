// Placement claims and the capacity audit against a real Postgres: claims
// lock only the chosen hosts, a launch whose host filled up meanwhile is
// planned again elsewhere, concurrent launches never overcommit, and the
// audit repairs drifted books.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditCapacity, claimCapacity } from "../src/instances/claims.js";
import { runInstancesOperation } from "../src/instances/run.js";
import { vpcOperations } from "../src/network/vpcs.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
beforeAll(async () => {
  t = await testCore();
  imageId = await addImage(t.core);
});
afterAll(() => t?.close());

const nano = { vcpus: 1, memoryMib: 512, diskGib: 1 };
const used = async (hostId: string) => (await t.core.db.query("SELECT used_vcpus FROM hosts WHERE id = $1", [hostId])).rows[0].used_vcpus as number;
const hostOf = async (instanceId: string) => (await t.core.db.query("SELECT host_id FROM instances WHERE id = $1", [instanceId])).rows[0].host_id as string;
const run = (maxCount: number, minCount = 1) =>
  runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: minCount, MaxCount: maxCount }));

/** Resolves once some backend is waiting for a lock (a claim queued behind an open transaction). */
async function someoneWaitsForALock(): Promise<void> {
  for (;;) {
    const { rows } = await t.core.db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
    if (rows[0].n > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("capacity claims", () => {
  it("lock only the chosen hosts: a claim on another host does not wait", async () => {
    const a = await addHost(t.core, "claim-a", { vcpus: 4, memoryMib: 4096, diskGib: 40 });
    const b = await addHost(t.core, "claim-b", { vcpus: 4, memoryMib: 4096, diskGib: 40 });
    const one = await t.core.db.connect();
    const two = await t.core.db.connect();
    try {
      await one.query("BEGIN");
      expect(await claimCapacity(one, new Map([[a, 2]]), nano)).toEqual({ full: [], busy: [] });
      await two.query("BEGIN");
      // A wait for `one`'s lock would end in this error instead of a result.
      await two.query("SET LOCAL lock_timeout = '2s'");
      expect(await claimCapacity(two, new Map([[b, 2]]), nano)).toEqual({ full: [], busy: [] });
      await two.query("COMMIT");
      await one.query("COMMIT");
      expect([await used(a), await used(b)]).toEqual([2, 2]);
    } finally {
      one.release();
      two.release();
    }
  });

  it("a host another claim holds is reported busy, or waited for and then found full; nothing is claimed on it", async () => {
    const h = await addHost(t.core, "claim-c", { vcpus: 2, memoryMib: 4096, diskGib: 40 });
    const one = await t.core.db.connect();
    const two = await t.core.db.connect();
    try {
      await one.query("BEGIN");
      expect(await claimCapacity(one, new Map([[h, 2]]), nano)).toEqual({ full: [], busy: [] });
      await two.query("BEGIN");
      // Without waiting, the host is reported busy at once; waiting, it is found full once `one` commits.
      expect(await claimCapacity(two, new Map([[h, 1]]), nano)).toEqual({ full: [], busy: [h] });
      const second = claimCapacity(two, new Map([[h, 1]]), nano, { wait: true });
      await someoneWaitsForALock();
      await one.query("COMMIT");
      expect(await second).toEqual({ full: [h], busy: [] });
      await two.query("COMMIT");
      expect(await used(h)).toBe(2);
    } finally {
      one.release();
      two.release();
    }
  });
});

describe("RunInstances placement", () => {
  it("plans around a host another launch holds, without waiting for it", async () => {
    // Spread prefers the larger, emptier host; another launch in flight holds it.
    const big = await addHost(t.core, "replan-big", { vcpus: 8, memoryMib: 8192, diskGib: 80 }, "lab-1a");
    const small = await addHost(t.core, "replan-small", { vcpus: 2, memoryMib: 8192, diskGib: 80 }, "lab-1a");
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus WHERE name LIKE 'claim-%'");
    const holder = await t.core.db.connect();
    try {
      await holder.query("BEGIN");
      await claimCapacity(holder, new Map([[big, 1]]), nano);
      // The launch must not queue behind the holder: it finishes while the holder is still open.
      const res = await run(1);
      expect(await hostOf(res.Instances[0]!.InstanceId)).toBe(small);
      await holder.query("COMMIT");
      expect([await used(big), await used(small)]).toEqual([1, 1]);
    } finally {
      holder.release();
    }
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus WHERE id = ANY($1)", [[big, small]]);
  });

  it("waits for hosts other launches hold when only they have room, and plans again if they filled up", async () => {
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus");
    const roomy = await addHost(t.core, "wait-roomy", { vcpus: 4, memoryMib: 8192, diskGib: 80 }, "lab-1a");
    const later = await addHost(t.core, "wait-later", { vcpus: 4, memoryMib: 8192, diskGib: 80 }, "lab-1a");
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus WHERE id = $1", [later]);
    const holder = await t.core.db.connect();
    try {
      // The only host with room is held by a launch in flight: the launch waits for it and places there once it commits with room left.
      await holder.query("BEGIN");
      await claimCapacity(holder, new Map([[roomy, 2]]), nano);
      const first = run(2, 2);
      await someoneWaitsForALock();
      await holder.query("COMMIT");
      for (const i of (await first).Instances) expect(await hostOf(i.InstanceId)).toBe(roomy);
      expect(await used(roomy)).toBe(4);
      // Held and filled by the other launch while a host frees up elsewhere: the waiting launch plans again there.
      await t.core.db.query("UPDATE hosts SET used_vcpus = 2 WHERE id = $1", [roomy]);
      await holder.query("BEGIN");
      await claimCapacity(holder, new Map([[roomy, 2]]), nano);
      const second = run(1, 1);
      await someoneWaitsForALock();
      await t.core.db.query("UPDATE hosts SET used_vcpus = 0 WHERE id = $1", [later]);
      await holder.query("COMMIT");
      expect(await hostOf((await second).Instances[0]!.InstanceId)).toBe(later);
      expect([await used(roomy), await used(later)]).toEqual([4, 1]);
    } finally {
      holder.release();
    }
  });

  it("never overcommits under concurrent launches, and MinCount stays all-or-nothing", async () => {
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus");
    const hosts = [await addHost(t.core, "race-1", { vcpus: 3, memoryMib: 8192, diskGib: 80 }), await addHost(t.core, "race-2", { vcpus: 3, memoryMib: 8192, diskGib: 80 })];
    const before = Number((await t.core.db.query("SELECT count(*) FROM instances")).rows[0].count);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => run(2, 2)));
    const placed = results.filter((r) => r.status === "fulfilled").length;
    expect(placed).toBe(3);
    for (const r of results) if (r.status === "rejected") expect((r.reason as { code: string }).code).toBe("InsufficientInstanceCapacity");
    expect(await Promise.all(hosts.map(used))).toEqual([3, 3]);
    expect(Number((await t.core.db.query("SELECT count(*) FROM instances")).rows[0].count)).toBe(before + 6);
    // Addresses of the refused launches went back to the subnet.
    const { rows: [addr] } = await t.core.db.query("SELECT count(*)::int AS n FROM subnet_addresses WHERE instance_id IS NOT NULL AND instance_id NOT IN (SELECT id FROM instances)");
    expect(addr.n).toBe(0);
  });

  it("does not deadlock when concurrent launches fill a fleet and plan again around each other", async () => {
    await t.core.db.query("UPDATE hosts SET used_vcpus = vcpus");
    const fleet: string[] = [];
    for (let i = 0; i < 12; i++) fleet.push(await addHost(t.core, `fill-${i}`, { vcpus: 5, memoryMib: 8192, diskGib: 80 }));
    // 60 slots, 25 launches of 4 (100 wanted): plans made on the same stale numbers collide and are redone.
    const results = await Promise.allSettled(Array.from({ length: 25 }, () => run(4, 1)));
    for (const r of results) if (r.status === "rejected") expect((r.reason as { code?: string }).code, String(r.reason)).toBe("InsufficientInstanceCapacity");
    const placed = results.reduce((n, r) => n + (r.status === "fulfilled" ? r.value.Instances.length : 0), 0);
    const usage = await Promise.all(fleet.map(used));
    expect(Math.max(...usage)).toBeLessThanOrEqual(5);
    expect(usage.reduce((a, b) => a + b, 0)).toBe(placed);
    expect(placed).toBeGreaterThan(40);
  });
});

describe("address claims", () => {
  it("in a new subnet are planned on the free-address index, not as a sort of the whole subnet", async () => {
    const large = await testCore({ CIRRUS_VPC_MIN_PREFIX: "13" });
    try {
      const ctx = large.ctx();
      const op = (name: string) => vpcOperations.find((o) => o.name === name)!.handler;
      const vpc = (await op("CreateVpc")(ctx, { CidrBlock: "10.64.0.0/13", TagSpecifications: [] })) as { Vpc: { VpcId: string } };
      const subnet = (await op("CreateSubnet")(ctx, { VpcId: vpc.Vpc.VpcId, CidrBlock: "10.64.0.0/14", AvailabilityZone: "", TagSpecifications: [] })) as { Subnet: { SubnetId: string } };
      // The free-address pick of claimAddresses.
      const { rows } = await large.core.db.query(
        "EXPLAIN SELECT ip FROM subnet_addresses WHERE subnet_id = $1 AND instance_id IS NULL ORDER BY ip LIMIT 100 FOR UPDATE SKIP LOCKED",
        [subnet.Subnet.SubnetId],
      );
      const plan = rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n");
      expect(plan).toContain("Index Scan using subnet_addresses_free");
      expect(plan).not.toContain("Sort");
    } finally {
      await large.close();
    }
  });
});

describe("auditCapacity", () => {
  it("finds and repairs books that drifted from the instances, and leaves correct ones alone", async () => {
    const h = await addHost(t.core, "audit", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
    // Every other host: no instances, empty books, and dead (so the launch below lands on this one).
    await t.core.db.query("UPDATE hosts SET used_vcpus = 0, used_memory_mib = 0, used_disk_gib = 0 WHERE id <> $1", [h]);
    await t.core.db.query("UPDATE instances SET state = 'terminated' WHERE host_id <> $1", [h]);
    await t.core.db.query("DELETE FROM host_heartbeats WHERE host_id <> $1", [h]);
    await run(2, 2);
    expect(await auditCapacity(t.core.db, t.core.log)).toEqual([]);
    await t.core.db.query("UPDATE hosts SET used_vcpus = 7, used_disk_gib = 0 WHERE id = $1", [h]);
    const drifts = await auditCapacity(t.core.db, t.core.log);
    expect(drifts).toEqual([{ hostId: h, recorded: { vcpus: 7, memoryMib: 1024, diskGib: 0 }, actual: { vcpus: 2, memoryMib: 1024, diskGib: 2 } }]);
    expect((await t.core.db.query("SELECT used_vcpus, used_memory_mib, used_disk_gib FROM hosts WHERE id = $1", [h])).rows[0]).toEqual({ used_vcpus: 2, used_memory_mib: 1024, used_disk_gib: 2 });
    expect(await auditCapacity(t.core.db, t.core.log)).toEqual([]);
  });
});
