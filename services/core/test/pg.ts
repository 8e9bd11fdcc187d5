// A fresh Postgres database per test file, migrated, and a Core over it with
// the ports stubbed: lifecycle jobs are recorded, agents answer at once.
// Needs a Postgres server (CIRRUS_TEST_ADMIN_DATABASE_URL, else the local one
// with trust auth), as `npm test` provides.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createLogger } from "@cirrus/common";
import type { LifecycleStep } from "@cirrus/common/queue";
import { coreConfigSchema, withZones } from "../src/config.js";
import type { Core, Principal, RequestContext } from "../src/context.js";
import { createCore } from "../src/core.js";
import { migrate } from "../src/db/migrate.js";
import { loadInstanceTypes } from "../src/instanceTypes.js";
import { ensureDefaultNetwork } from "../src/network/vpcs.js";

const ADMIN_URL = process.env.CIRRUS_TEST_ADMIN_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestCore {
  core: Core;
  /** The steps handed to the lifecycle port, in order. */
  enqueued: LifecycleStep[][];
  /** The hosts each notifyHosts call named, in order. */
  notified: string[][];
  /** A request by the default principal. */
  ctx(principal?: Principal): RequestContext;
  close(): Promise<void>;
}

export async function testCore(env: Record<string, string> = {}): Promise<TestCore> {
  const name = `cirrus_core_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = new pg.Pool({ connectionString: url.toString(), max: 10 });
  const log = createLogger("core-test").child({}, { level: process.env.CIRRUS_LOG_LEVEL ?? "silent" });
  await migrate(db, log);
  const enqueued: LifecycleStep[][] = [];
  const notified: string[][] = [];
  const core: Core = {
    ...createCore({
      db,
      config: withZones(coreConfigSchema.parse(env)),
      instanceTypes: loadInstanceTypes(),
      log,
      lifecycle: { enqueue: async (batches) => void enqueued.push(...batches.map((b) => [...b])) },
      agents: {
        createInstance: async () => ({}),
        stopInstance: async () => ({}),
        rebootInstance: async () => ({}),
        destroyInstance: async () => ({}),
        applyHostState: async () => ({}),
        consoleOutput: async () => Buffer.alloc(0),
        createVolume: async (_h, r) => ({ volumeId: r.volumeId, sizeBytes: 0, storedBytes: 0 }),
        deleteVolume: async (_h, volumeId) => ({ volumeId, sizeBytes: 0, storedBytes: 0 }),
        attachVolume: async (_h, _i, a) => ({ volumeId: a.volumeId, sizeBytes: 0, storedBytes: 0 }),
        detachVolume: async (_h, r) => ({ volumeId: r.volumeId, sizeBytes: 0, storedBytes: 0 }),
        modifyVolume: async (_h, r) => ({ volumeId: r.volumeId, sizeBytes: r.sizeGib * 1024 ** 3, storedBytes: 0 }),
        createSnapshot: async (_h, r) => ({ snapshotId: r.snapshotId, sizeBytes: 0, storedBytes: 0 }),
        deleteSnapshot: async (_h, snapshotId) => ({ snapshotId, sizeBytes: 0, storedBytes: 0 }),
        copySnapshot: async (_h, r) => ({ snapshotId: r.snapshotId, sizeBytes: 0, storedBytes: 0 }),
        isPermanent: () => false,
      },
    }),
    // Recorded, not pushed: the tests look at which hosts each change named.
    notifyHosts: (hostIds) => void notified.push([...hostIds]),
  };
  const principal: Principal = { accountId: "123456789012", operator: false };
  await ensureDefaultNetwork(core, principal.accountId);
  return {
    core,
    enqueued,
    notified,
    ctx: (p = principal) => ({ ...core, principal: p, requestId: randomBytes(4).toString("hex") }),
    async close() {
      await db.end();
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      // The pool's connections end asynchronously: a forced drop while one is
      // still closing would send it an error no one listens for any more.
      for (let i = 0; i < 100; i++) {
        const { rows } = await a.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", [name]);
        if (rows[0].n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Adds a live host with this capacity; returns its id. */
export async function addHost(core: Core, name: string, capacity: { vcpus: number; memoryMib: number; diskGib: number }, zone = "lab-1a"): Promise<string> {
  const id = `h-${randomBytes(9).toString("hex").slice(0, 17)}`;
  await core.db.query(
    "INSERT INTO hosts (id, name, availability_zone, endpoint, hypervisor, secret, vcpus, memory_mib, disk_gib) VALUES ($1,$2,$3,'127.0.0.1:1','fake','s',$4,$5,$6)",
    [id, name, zone, capacity.vcpus, capacity.memoryMib, capacity.diskGib],
  );
  await core.db.query("INSERT INTO host_heartbeats (host_id, last_heartbeat_at) VALUES ($1, now())", [id]);
  return id;
}

/** Registers an image row (no files: nothing boots here); returns its id. */
export async function addImage(core: Core, ownerId = "123456789012"): Promise<string> {
  const id = `ami-${randomBytes(9).toString("hex").slice(0, 17)}`;
  await core.db.query(
    `INSERT INTO images (id, owner_id, name, state, location, architecture, root_device_name, virtualization_type, root_size_gib)
     VALUES ($1, $2, $1, 'available', '/var/lib/cirrus/images/none.qcow2', 'x86_64', '/dev/vda', 'hvm', 1)`,
    [id, ownerId],
  );
  return id;
}
