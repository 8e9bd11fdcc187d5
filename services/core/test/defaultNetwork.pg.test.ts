// An account's default network follows the VPC it has: a zone added later
// gets its default subnet inside that VPC, even when CIRRUS_DEFAULT_VPC_CIDR
// has changed since (or a process with another configuration asks).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coreConfigSchema, withZones } from "../src/config.js";
import { ensureDefaultNetwork } from "../src/network/vpcs.js";
import { testCore, type TestCore } from "./pg.js";

let t: TestCore;
beforeAll(async () => {
  t = await testCore({ CIRRUS_DEFAULT_VPC_CIDR: "10.20.0.0/16" });
});
afterAll(() => t?.close());

describe("ensureDefaultNetwork", () => {
  it("carves a new zone's default subnet from the account's VPC, not from today's configuration", async () => {
    const config = withZones(coreConfigSchema.parse({ CIRRUS_DEFAULT_VPC_CIDR: "172.31.0.0/16", CIRRUS_ZONES: "lab-1a,lab-1b" }));
    await ensureDefaultNetwork({ db: t.core.db, log: t.core.log, config }, "123456789012");
    const { rows } = await t.core.db.query("SELECT v.cidr AS vpc, s.cidr AS subnet, s.availability_zone AS zone FROM subnets s JOIN vpcs v ON v.id = s.vpc_id WHERE s.owner_id = '123456789012' ORDER BY zone");
    expect(rows).toEqual([
      { vpc: "10.20.0.0/16", subnet: "10.20.0.0/20", zone: "lab-1a" },
      { vpc: "10.20.0.0/16", subnet: "10.20.16.0/20", zone: "lab-1b" },
    ]);
  });
});
