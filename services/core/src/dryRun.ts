// EC2's DryRun, for every operation at once: the action runs for real against
// a database session that can never commit. Everything up to its first
// write is checked exactly as in a real call (parameters, ownership, states,
// limits, constraints, even capacity claims inside the transaction); where it
// would commit a write, the write is rolled back and the request ends with
// DryRunOperation. So no operation needs dry-run code of its own, and a dry
// run can never write.
import type { Pool, PoolClient } from "pg";
import type { RequestContext } from "./context.js";
import { inTransaction } from "./db/tx.js";
import { Ec2Error } from "./errors.js";

const succeeded = () => new Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.");

/** True when the session's current transaction has written anything (it has a transaction id). */
async function wrote(client: Pick<PoolClient, "query">): Promise<boolean> {
  const { rows: [r] } = await client.query<{ xid: string | null }>("SELECT txid_current_if_assigned()::text AS xid");
  return r!.xid !== null;
}

/** A client whose COMMIT, once anything was written, rolls back and throws DryRunOperation. */
function neverCommits(client: PoolClient): PoolClient {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== "query") return Reflect.get(target, prop, receiver) as unknown;
      return async (...args: Parameters<PoolClient["query"]>) => {
        if (typeof args[0] === "string" && args[0].trim().toUpperCase() === "COMMIT" && await wrote(target)) {
          await target.query("ROLLBACK");
          throw succeeded();
        }
        return (target.query as (...a: unknown[]) => unknown)(...args);
      };
    },
  });
}

/**
 * A pool standing in for `pool` in a dry run: `connect()` gives clients that
 * never commit a write (above); a statement run on the pool itself is a
 * transaction of its own on such a client (inTransaction), so one that
 * wrote is rolled back and throws DryRunOperation.
 * Only `query` and `connect` are served: what the core's handlers use.
 */
function dryRunPool(pool: Pool): Pool {
  const standIn = {
    connect: async () => neverCommits(await pool.connect()),
    // A statement on the pool is a transaction of its own, whose COMMIT is a never-committing client's.
    query: (...args: Parameters<Pool["query"]>) => inTransaction(standIn as unknown as Pool, (client) => (client.query as (...a: unknown[]) => Promise<unknown>)(...args)),
  };
  return standIn as unknown as Pool;
}

/**
 * Runs `handler` as a dry run of the request `ctx` describes. Postcondition:
 * nothing is written and no work is queued; resolves never: throws
 * DryRunOperation where the real call would have succeeded, or the error the
 * real call would have answered.
 */
export async function dryRun<Req>(ctx: RequestContext, handler: (ctx: RequestContext, req: Req) => Promise<unknown>, request: Req): Promise<never> {
  const refuse = async (): Promise<never> => {
    throw succeeded();
  };
  await handler({
    ...ctx,
    db: dryRunPool(ctx.db),
    lifecycle: { enqueue: refuse },
    notifyHosts: () => undefined,
  }, request);
  throw succeeded();
}
