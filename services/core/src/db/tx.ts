// The one transaction helper every write path uses.
import type { Pool, PoolClient } from "pg";

/** A pool or a client inside a transaction: anything that can run a query. */
export type Queryable = Pick<PoolClient, "query">;

/** Runs `fn` in one transaction: committed when it returns, rolled back when it throws. */
export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** True for Postgres's unique_violation, which some inserts turn into EC2's Duplicate codes. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === "23505";
}
