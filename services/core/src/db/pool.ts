// The one way a process opens its Postgres pool, so every pool has the same
// safety settings (a statement timeout) and names itself in pg_stat_activity.
import pg from "pg";
import type { Logger } from "@cirrus/common";

/**
 * A pool for `DATABASE_URL` of at most `max` connections. Postcondition: every
 * statement on it is cancelled by the server after
 * CIRRUS_DB_STATEMENT_TIMEOUT_MS (error code 57014), and its idle clients'
 * errors are logged instead of crashing the process.
 */
export function openPool(config: { DATABASE_URL: string; CIRRUS_DB_STATEMENT_TIMEOUT_MS: number }, opts: { max: number; applicationName: string; log: Logger }): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.DATABASE_URL, max: opts.max, application_name: opts.applicationName,
    statement_timeout: config.CIRRUS_DB_STATEMENT_TIMEOUT_MS,
  });
  pool.on("error", (err) => opts.log.error({ err }, "postgres pool error"));
  return pool;
}
