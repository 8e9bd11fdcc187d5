// A launch that fails for good on a host that cannot confirm the removal of
// what it may have made keeps the instance's address, MAC and capacity until
// the host confirms: it becomes a terminate, never "terminated" on hope. A
// launch that a terminate overtook removes what it made.
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { instanceLifecycle } from "../src/instances/lifecycle.js";
import { runInstancesOperation } from "../src/instances/run.js";
import { changeInstances } from "../src/instances/transitions.js";
import { runLifecycleJob } from "../src/lifecycle.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
beforeAll(async () => {
  t = await testCore();
  imageId = await addImage(t.core);
  await addHost(t.core, "failing", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
});
afterAll(() => t?.close());

const held = async (id: string) => {
  const { rows: [r] } = await t.core.db.query(
    `SELECT i.state, i.task, i.state_reason_code, host(i.private_ip) AS ip, (SELECT count(*)::int FROM subnet_addresses a WHERE a.instance_id = i.id) AS addresses,
            h.used_vcpus FROM instances i JOIN hosts h ON h.id = i.host_id WHERE i.id = $1`, [id]);
  return r as { state: string; task: string | null; state_reason_code: string; ip: string | null; addresses: number; used_vcpus: number };
};

describe("a launch that finishes while its instance is shutting down", () => {
  it("destroys the domain it made, though the terminate has not finished yet", async () => {
    const res = await runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 }));
    const id = res.Instances[0]!.InstanceId;
    const launch = t.enqueued.flat().filter((s) => s.id === id);
    const agents = t.core.agents;
    const saved = { createInstance: agents.createInstance, destroyInstance: agents.destroyInstance };
    const destroyed: string[] = [];
    try {
      // The user terminates while the agent is still making the domain; the
      // terminate step's destroy ran first and its compare-and-swap is yet to come.
      agents.createInstance = async () => {
        await changeInstances(t.ctx(), "terminate", [id]);
        return {};
      };
      agents.destroyInstance = async (_host, instanceId) => {
        destroyed.push(instanceId);
        return {};
      };
      expect(await instanceLifecycle.run(t.core, launch)).toEqual([{ step: launch[0], outcome: "superseded" }]);
      expect((await held(id)).state).toBe("shutting-down");
      expect(destroyed).toEqual([id]);
    } finally {
      Object.assign(agents, saved);
    }
  });
});

describe("a launch that failed for good", () => {
  it("whose destroy fails too stays shutting-down holding its address and capacity, and is terminated once the host confirms", async () => {
    const res = await runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 }));
    const id = res.Instances[0]!.InstanceId;
    const launch = t.enqueued.flat().filter((s) => s.id === id);
    const used = (await held(id)).used_vcpus;
    const agents = t.core.agents;
    const saved = { createInstance: agents.createInstance, destroyInstance: agents.destroyInstance };
    try {
      agents.createInstance = async () => Promise.reject(new Error("host unreachable"));
      agents.destroyInstance = async () => Promise.reject(new Error("host unreachable"));
      t.enqueued.length = 0;
      const report = await runLifecycleJob(t.core, launch, true);
      expect(report.settled).toEqual(launch);
      const after = await held(id);
      expect(after).toMatchObject({ state: "shutting-down", task: "terminate", state_reason_code: "Server.InternalError", addresses: 1, used_vcpus: used });
      expect(after.ip).not.toBeNull();
      // The terminate is queued (and the sweeper retries it while the host stays away).
      const terminate = t.enqueued.flat().filter((s) => s.id === id);
      expect(terminate).toHaveLength(1);
      expect(terminate[0]!.seq).toBeGreaterThan(launch[0]!.seq);

      agents.destroyInstance = saved.destroyInstance;
      expect(await instanceLifecycle.run(t.core, terminate)).toEqual([{ step: terminate[0], outcome: "done" }]);
      expect(await held(id)).toMatchObject({ state: "terminated", task: null, state_reason_code: "Server.InternalError", addresses: 0, used_vcpus: used - 1 });
    } finally {
      Object.assign(agents, saved);
    }
  });
});
