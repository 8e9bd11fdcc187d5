// The per-host limit on group-sourced firewall entries
// (CIRRUS_MAX_GROUP_ENTRIES_PER_HOST), against a real Postgres: the default
// group's rule naming the group itself gives members × instances entries on
// a host; at the limit they are expanded, one past it the rule is left out
// (fail closed). Members are read only up to what the limit allows, so both
// sides of the boundary are checked here.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInstancesOperation } from "../src/instances/run.js";
import { hostNetworkState } from "../src/network/hostState.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
let hostId = "";
beforeAll(async () => {
  t = await testCore({ CIRRUS_MAX_GROUP_ENTRIES_PER_HOST: "9" });
  imageId = await addImage(t.core);
  hostId = await addHost(t.core, "limit", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
});
afterAll(() => t?.close());

const launch = (count: number) =>
  runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: count, MaxCount: count }));
const ingressCidrs = async () => (await hostNetworkState(t.core, hostId)).firewalls.map((f) => f.ingress.flatMap((r) => r.cidrs).length);

describe("group-sourced entries per host", () => {
  it("are expanded up to the limit (3 members × 3 instances = 9) and left out one member past it (4 × 4 = 16)", async () => {
    await launch(3);
    expect(await ingressCidrs()).toEqual([3, 3, 3]);
    await launch(1);
    expect(await ingressCidrs()).toEqual([0, 0, 0, 0]);
  });
});
