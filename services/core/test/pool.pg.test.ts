// The processes' Postgres pools against a real server: a statement that runs
// past CIRRUS_DB_STATEMENT_TIMEOUT_MS is cancelled by the server (57014) and
// the pool goes on serving.
import { createLogger } from "@cirrus/common";
import { describe, expect, it } from "vitest";
import { openPool } from "../src/db/pool.js";

const url = process.env.CIRRUS_TEST_ADMIN_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const log = createLogger("pool-test").child({}, { level: "silent" });

describe("openPool", () => {
  it("has the server cancel a statement that runs past the timeout, and keeps serving", async () => {
    const pool = openPool({ DATABASE_URL: url, CIRRUS_DB_STATEMENT_TIMEOUT_MS: 200 }, { max: 1, applicationName: "cirrus-pool-test", log });
    try {
      await expect(pool.query("SELECT pg_sleep(5)")).rejects.toMatchObject({ code: "57014" });
      expect((await pool.query<{ n: number }>("SELECT 1 AS n")).rows[0]!.n).toBe(1);
      expect((await pool.query<{ statement_timeout: string }>("SHOW statement_timeout")).rows[0]!.statement_timeout).toBe("200ms");
    } finally {
      await pool.end();
    }
  });
});
