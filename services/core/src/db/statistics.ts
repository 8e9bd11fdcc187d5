// Planner statistics after a bulk change. Autovacuum analyzes a table only
// after its naptime (a minute) and once a tenth of it changed; until then
// Postgres plans on the table as it was. After one change of many rows
// that is the wrong plan for every query that follows: an address claim
// sorting a new /14 subnet's free addresses instead of reading their index,
// a host state's compile scanning every group membership after a launch of
// 100,000. So the change that grew a table analyzes it at once, after its
// commit. See docs/ARCHITECTURE.md, "Flows" (RunInstances).
import type { Core } from "../context.js";

/** Tables analyzed here (the names are never taken from a request). */
export type AnalyzedTable = "subnet_addresses" | "address_pool" | "instances" | "instance_security_groups";

/** A change of at least this many rows, and a tenth of its table, is analyzed at once (mirroring autovacuum's scale factor). */
const BULK_ROWS = 1000;

/**
 * Analyzes these tables now. Best effort (autovacuum would later): a
 * failure is logged, never thrown, and a table another ANALYZE holds is
 * skipped rather than waited for. Postcondition: the tables' statistics are
 * fresh unless a warning was logged or a concurrent ANALYZE was refreshing them.
 */
async function analyzeTables(core: Pick<Core, "db" | "log">, tables: readonly AnalyzedTable[]): Promise<void> {
  await core.db.query(`ANALYZE (SKIP_LOCKED) ${tables.join(", ")}`).catch((err: unknown) => core.log.warn({ err, tables }, "analyzing tables failed"));
}

/**
 * Analyzes these tables when `rows` is a bulk change for the first of them
 * (at least BULK_ROWS and a tenth of the rows the planner believes it has).
 * Best effort as analyzeTables: it runs after a commit, so it never throws.
 */
export async function analyzeAfterBulkChange(core: Pick<Core, "db" | "log">, rows: number, tables: readonly [AnalyzedTable, ...AnalyzedTable[]]): Promise<void> {
  if (rows < BULK_ROWS) return;
  const believed = await core.db.query<{ reltuples: number }>("SELECT reltuples FROM pg_class WHERE oid = $1::regclass", [tables[0]])
    .then((r) => r.rows[0]?.reltuples ?? -1, () => -1);
  // reltuples is -1 for a table never analyzed.
  if (believed >= 0 && rows * 10 < believed) return;
  await analyzeTables(core, tables);
}
