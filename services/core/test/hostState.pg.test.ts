// Host states against a real Postgres: revisions that only grow, heartbeats
// that carry a state only when the agent is behind or something changed,
// changes marked in their own transaction and told to every host they
// concern (also those whose rules name the affected groups), user data on
// request, the verdicts on instances an agent holds unasked, and the
// fail-closed limit on a state's size.
import { agent, compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classifyInstances, heartbeat, userData } from "../src/hosts.js";
import { compileHostState, markHostsChanged } from "../src/hostState.js";
import { runInstancesOperation } from "../src/instances/run.js";
import { changeInstances } from "../src/instances/transitions.js";
import { instanceLifecycle } from "../src/instances/lifecycle.js";
import { securityGroupOperations } from "../src/network/securityGroups.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

let t: TestCore;
let imageId = "";
let hostA = "";
let hostB = "";
beforeAll(async () => {
  t = await testCore();
  imageId = await addImage(t.core);
  hostA = await addHost(t.core, "state-a", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
  hostB = await addHost(t.core, "state-b", { vcpus: 8, memoryMib: 8192, diskGib: 80 });
});
afterAll(() => t?.close());

const op = (name: string) => securityGroupOperations.find((o) => o.name === name)!;
const alive = (hostId: string, yes: boolean) =>
  yes ? t.core.db.query("INSERT INTO host_heartbeats (host_id, last_heartbeat_at) VALUES ($1, now()) ON CONFLICT (host_id) DO UPDATE SET last_heartbeat_at = now()", [hostId])
    : t.core.db.query("DELETE FROM host_heartbeats WHERE host_id = $1", [hostId]);
/** Launches one instance on `hostId` (the other host is made dead meanwhile). */
async function launchOn(hostId: string, groupId: string, userDataText = ""): Promise<compute.Instance> {
  const other = hostId === hostA ? hostB : hostA;
  await alive(other, false);
  try {
    const res = await runInstancesOperation.handler(t.ctx(), compute.RunInstancesRequest.fromPartial({
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, SecurityGroupIds: [groupId], UserData: Buffer.from(userDataText).toString("base64"),
    }));
    return res.Instances[0]!;
  } finally {
    await alive(other, true);
  }
}
const ingressCidrs = (state: { network?: { firewalls: { instanceId: string; ingress: { cidrs: string[] }[] }[] } }, instanceId: string) =>
  state.network!.firewalls.find((f) => f.instanceId === instanceId)!.ingress.flatMap((r) => r.cidrs);
const heartbeatAt = (hostId: string, appliedRevision: number) => heartbeat(t.core, { hostId, instances: [], appliedRevision });

describe("host states", () => {
  let web = "";
  let app = "";
  let x: compute.Instance;
  let y: compute.Instance;

  it("a launch tells its own host and every host whose rules name the new instance's groups", async () => {
    web = (await op("CreateSecurityGroup").handler(t.ctx(), { GroupName: "web", Description: "web", VpcId: "", TagSpecifications: [] })).GroupId;
    app = (await op("CreateSecurityGroup").handler(t.ctx(), { GroupName: "app", Description: "app", VpcId: "", TagSpecifications: [] })).GroupId;
    // web's members accept port 80 from app's members.
    await op("AuthorizeSecurityGroupIngress").handler(t.ctx(), compute.AuthorizeSecurityGroupRequest.fromPartial({ GroupId: web, IpPermissions: [{ IpProtocol: "tcp", FromPort: 80, ToPort: 80, UserIdGroupPairs: [{ GroupId: app }] }] }));
    x = await launchOn(hostA, web);
    t.notified.length = 0;
    y = await launchOn(hostB, app);
    expect(t.notified.flat().sort()).toEqual([hostA, hostB].sort());
    const stateA = (await heartbeatAt(hostA, 0)).state!;
    expect(ingressCidrs(stateA, x.InstanceId)).toEqual([`${y.PrivateIpAddress}/32`]);
  });

  it("answers a heartbeat with a state only when the agent is behind; a change not yet pushed is pushed", async () => {
    const first = (await heartbeatAt(hostA, 0)).state!;
    expect(first.instances.map((i) => i.instanceId)).toEqual([x.InstanceId]);
    t.notified.length = 0;
    expect((await heartbeatAt(hostA, first.revision)).state).toBeUndefined();
    expect(t.notified).toEqual([]);
    // A change whose push never happened (the API died after the commit): the heartbeat asks for the push.
    await markHostsChanged(t.core.db, [hostA]);
    expect((await heartbeatAt(hostA, first.revision)).state).toBeUndefined();
    expect(t.notified).toEqual([[hostA]]);
    // The push compiled a new revision: heartbeats leave it to the push for a moment…
    const pushed = await compileHostState(t.core, hostA);
    expect(pushed.revision).toBeGreaterThan(first.revision);
    expect((await heartbeatAt(hostA, first.revision)).state).toBeUndefined();
    // …and once it has had its time without reaching the agent, the next heartbeat carries a state.
    await t.core.db.query("UPDATE host_states SET compiled_at = now() - interval '1 minute' WHERE host_id = $1", [hostA]);
    const caughtUp = (await heartbeatAt(hostA, first.revision)).state!;
    expect(caughtUp.revision).toBeGreaterThan(pushed.revision);
    expect((await heartbeatAt(hostA, caughtUp.revision)).state).toBeUndefined();
    // An agent that restarted (it has applied nothing) gets the current state.
    expect((await heartbeatAt(hostA, 0)).state!.revision).toBeGreaterThan(caughtUp.revision);
  });

  it("gives concurrent compiles distinct revisions", async () => {
    const states = await Promise.all(Array.from({ length: 8 }, () => compileHostState(t.core, hostA)));
    const revisions = states.map((s) => s.revision);
    expect(new Set(revisions).size).toBe(8);
  });

  it("a terminate tells the hosts whose rules named the instance, and their state drops its address", async () => {
    await changeInstances(t.ctx(), "terminate", [y.InstanceId]);
    const steps = t.enqueued.flat().filter((s) => s.id === y.InstanceId && s.seq === 2);
    t.notified.length = 0;
    expect(await instanceLifecycle.run(t.core, steps)).toEqual([{ step: steps[0], outcome: "done" }]);
    expect(t.notified.flat().sort()).toEqual([hostA, hostB].sort());
    const { rows } = await t.core.db.query("SELECT count(*)::int AS n FROM host_state_changes WHERE host_id = $1", [hostA]);
    expect(rows[0].n).toBeGreaterThan(0);
    expect(ingressCidrs((await heartbeatAt(hostA, 0)).state!, x.InstanceId)).toEqual([]);
  });

  it("classifies what an agent holds unasked: terminated only on its own host, unknown only without any record, else keep", async () => {
    const { InstanceVerdict: V } = agent;
    const never = "i-0123456789abcdef0";
    const verdicts = async (hostId: string, ids: string[]) => (await classifyInstances(t.core, hostId, ids)).instances.map((i) => [i.instanceId, i.verdict]);
    // y was terminated on hostB; x runs on hostA.
    expect(await verdicts(hostB, [y.InstanceId, x.InstanceId, never, never])).toEqual([[y.InstanceId, V.INSTANCE_VERDICT_TERMINATED], [x.InstanceId, V.INSTANCE_VERDICT_KEEP], [never, V.INSTANCE_VERDICT_UNKNOWN]]);
    expect(await verdicts(hostA, [y.InstanceId, x.InstanceId])).toEqual([[y.InstanceId, V.INSTANCE_VERDICT_KEEP], [x.InstanceId, V.INSTANCE_VERDICT_KEEP]]);
    await expect(classifyInstances(t.core, hostA, Array.from({ length: 1001 }, () => never))).rejects.toMatchObject({ code: "InvalidParameterValue" });
  });

  it("serves an instance's user data only to its own host, and not once terminated", async () => {
    const z = await launchOn(hostB, app, "#!/bin/sh\necho z\n");
    expect((await userData(t.core, hostB, z.InstanceId)).userData.toString()).toBe("#!/bin/sh\necho z\n");
    await expect(userData(t.core, hostA, z.InstanceId)).rejects.toMatchObject({ code: "InvalidInstanceID.NotFound" });
    await t.core.db.query("UPDATE instances SET state = 'terminated' WHERE id = $1", [z.InstanceId]);
    await expect(userData(t.core, hostB, z.InstanceId)).rejects.toMatchObject({ code: "InvalidInstanceID.NotFound" });
  });

  it("fails closed when a state would not fit in one agent message, keeping the instances", async () => {
    const full = await compileHostState(t.core, hostA);
    expect(full.network!.metadata).toHaveLength(1);
    // One byte short of the full state.
    const closed = await compileHostState(t.core, hostA, agent.HostState.encode(full).finish().length - 1);
    expect(closed.instances.map((i) => i.instanceId)).toEqual([x.InstanceId]);
    expect(closed.network).toEqual({ firewalls: [{ instanceId: x.InstanceId, ingress: [], egress: [] }], elasticIps: [], metadata: [] });
    await expect(compileHostState(t.core, hostA, 20)).rejects.toThrow(/more instances than one agent message/);
  });
});
