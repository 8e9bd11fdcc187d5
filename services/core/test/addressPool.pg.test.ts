// The elastic-IP pool against a real Postgres: a block's network and
// broadcast addresses are never handed out (also when an earlier version put
// them in the pool), a /32 is one usable address, and an allocation with no
// pool configured says so instead of "exhausted".
import { compute } from "@cirrus/proto";
import { afterEach, describe, expect, it } from "vitest";
import { Ec2Error } from "../src/errors.js";
import { addressOperations, syncAddressPool } from "../src/network/addresses.js";
import { testCore, type TestCore } from "./pg.js";

let t: TestCore | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const allocate = (tc: TestCore) => addressOperations.find((o) => o.name === "AllocateAddress")!.handler(tc.ctx(), compute.AllocateAddressRequest.fromPartial({ Domain: "vpc" }));
const pool = async (tc: TestCore) => (await tc.core.db.query<{ ip: string }>("SELECT host(ip) AS ip FROM address_pool ORDER BY ip")).rows.map((r) => r.ip);
const refusal = (p: Promise<unknown>) => p.then(() => undefined, (err: Ec2Error) => ({ code: err.code, message: err.message }));

describe("the elastic-IP pool", () => {
  it("hands out neither the network nor the broadcast address of a block, and takes out those an earlier version put in", async () => {
    t = await testCore({ CIRRUS_ADDRESS_POOL: "198.18.200.0/30,198.18.201.7/32" });
    await t.core.db.query("INSERT INTO address_pool (ip) VALUES ('198.18.200.0'), ('198.18.200.3')");
    await syncAddressPool(t.core);
    expect(await pool(t)).toEqual(["198.18.200.1", "198.18.200.2", "198.18.201.7"]);
    const got = [await allocate(t), await allocate(t), await allocate(t)].map((a) => a.PublicIp).sort();
    expect(got).toEqual(["198.18.200.1", "198.18.200.2", "198.18.201.7"]);
    expect(await refusal(allocate(t))).toEqual({ code: "AddressLimitExceeded", message: expect.stringContaining("exhausted") });
  });

  it("says that no pool is configured when there is none", async () => {
    t = await testCore();
    await syncAddressPool(t.core);
    expect(await refusal(allocate(t))).toEqual({ code: "AddressLimitExceeded", message: expect.stringContaining("No elastic IP address pool is configured") });
  });
});
