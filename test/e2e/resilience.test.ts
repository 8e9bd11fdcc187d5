// Processes die: the agent while instances run, a worker in the middle of a
// launch. Nothing is lost or duplicated.
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
let imageId = "";
let hostId = "";
let instancesDir = "";

const usage = async () => (await stack.pool.query("SELECT used_vcpus, used_memory_mib, used_disk_gib FROM hosts WHERE id = $1", [hostId])).rows[0];
const bootCount = async (id: string) => [...(await stack.consoleText(id)).matchAll(new RegExp(`CIRRUS-BOOT instance-id=${id} `, "g"))].length;

beforeAll(async () => {
  await stack.start();
  ({ hostId, instancesDir } = await stack.addAgent({ name: "kvm1", driver: "libvirt", capacity: { vcpus: 4, memoryMib: 4096, diskGib: 20 } }));
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

describe("resilience", () => {
  it("an agent killed and restarted while instances run loses and duplicates nothing", async () => {
    const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 2, MaxCount: 2 });
    const ids: string[] = res.Instances.map((i: { InstanceId: string }) => i.InstanceId);
    await stack.waitForState(ids, "running", 180_000);
    for (const id of ids) await waitUntil(`boot marker of ${id}`, async () => (await bootCount(id)) === 1, 120_000, 1000);
    const before = await usage();
    const agent = stack.agents.get("kvm1")!;
    await agent.kill("SIGKILL");
    for (const id of ids) expect(stack.domState(id)).toBe("running");
    agent.start();
    // Let the restarted agent re-register and heartbeat well past the drift grace period.
    await waitUntil("agent heartbeat after restart", async () => {
      const { rows } = await stack.pool.query("SELECT last_heartbeat_at > now() - interval '2 seconds' AS fresh FROM host_heartbeats WHERE host_id = $1", [hostId]);
      return rows[0]?.fresh;
    });
    await new Promise((r) => setTimeout(r, 6000));
    expect((await stack.pool.query("SELECT count(*)::int AS n FROM hosts")).rows[0].n).toBe(1);
    for (const id of ids) {
      expect((await stack.instance(id)).State?.Name).toBe("running");
      expect(stack.domState(id)).toBe("running");
      expect(await bootCount(id)).toBe(1);
    }
    expect(stack.domains()).toHaveLength(2);
    expect(await usage()).toEqual(before);
    await stack.call("terminateInstances", { InstanceIds: ids });
    await stack.waitForState(ids, "terminated");
  });

  it("a worker killed in the middle of a launch: the launch completes exactly once", async () => {
    const agent = stack.agents.get("kvm1")!;
    const redis = new Redis(process.env.CIRRUS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379");
    try {
      // Freeze the agent so the worker's CreateInstance call is in flight when the worker dies.
      agent.child!.kill("SIGSTOP");
      const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
      const id: string = res.Instances[0].InstanceId;
      await waitUntil("the launch job to be active", async () => (await redis.llen(`${stack.queuePrefix}:cirrus-lifecycle:active`)) === 1);
      await new Promise((r) => setTimeout(r, 500));
      for (const w of stack.workers) await w.kill("SIGKILL");
      expect((await stack.instance(id)).State?.Name).toBe("pending");
      agent.child!.kill("SIGCONT");
      stack.addWorker();
      await stack.waitForState([id], "running", 180_000);
      await waitUntil("boot marker", async () => (await bootCount(id)) >= 1, 120_000, 1000);
      // Give any duplicate delivery time to show itself.
      await new Promise((r) => setTimeout(r, 5000));
      expect(stack.domains()).toEqual([`${stack.domainPrefix}${id}`]);
      expect(await bootCount(id)).toBe(1);
      expect((await stack.instance(id)).State?.Name).toBe("running");
      expect(await usage()).toEqual({ used_vcpus: 1, used_memory_mib: 512, used_disk_gib: 1 });
    } finally {
      agent.child?.kill("SIGCONT");
      redis.disconnect();
    }
  });

  it("a domain killed behind Cirrus's back becomes stopped", async () => {
    const id = (await stack.pool.query("SELECT id FROM instances WHERE state = 'running' LIMIT 1")).rows[0].id as string;
    const { execFileSync } = await import("node:child_process");
    execFileSync("virsh", ["-c", "qemu:///system", "destroy", `${stack.domainPrefix}${id}`]);
    await stack.waitForState([id], "stopped", 60_000);
    expect((await stack.instance(id)).StateReason?.Code).toBe("Client.InstanceInitiatedShutdown");
    await stack.call("startInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "running");
    expect(stack.domState(id)).toBe("running");
  });

  it("orphans go only on evidence, into quarantine: another host's instances and ones this agent did not make are kept", async () => {
    const { execFileSync } = await import("node:child_process");
    const { existsSync, readdirSync, writeFileSync } = await import("node:fs");
    const { randomBytes } = await import("node:crypto");
    const virsh = (...args: string[]) => execFileSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });
    const keep = (await stack.pool.query("SELECT id FROM instances WHERE state = 'running' LIMIT 1")).rows[0].id as string;
    // Unknown to the control plane and not made by the agent: a copy of a real
    // instance's domain, defined by hand under an id the control plane never issued
    // (without its NIC: the copy's tap name and MAC would clash with the original's).
    const stranger = `i-${randomBytes(9).toString("hex").slice(0, 17)}`;
    const original = virsh("dumpxml", `${stack.domainPrefix}${keep}`);
    // Each instance's disk, where its domain says it is.
    const keepDisk = /<source file='([^']+\.qcow2)'/.exec(original)![1]!;
    const file = (id: string) => keepDisk.replaceAll(keep, id);
    const xml = original
      .replace(/<uuid>[^<]*<\/uuid>/, "").replace(/<entry name='uuid'>[^<]*<\/entry>/, "")
      .replace(/<interface[\s\S]*?<\/interface>/g, "").replaceAll(keep, stranger);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", `${process.env.CIRRUS_TEST_AMI_DIR ?? "/var/lib/cirrus/images/test-ami"}/rootfs.qcow2`, file(stranger)]);
    writeFileSync(`${stack.workDir}/stranger.xml`, xml);
    virsh("define", `${stack.workDir}/stranger.xml`);
    virsh("start", `${stack.domainPrefix}${stranger}`);
    // Another host's instances, as a renamed or re-enrolled host, or a second agent
    // on the same instances directory, sees them: a second agent sharing kvm1's
    // directory and domain prefix (its own network prefix; too small to be placed on).
    await stack.addAgent({
      name: "kvm2", driver: "libvirt", capacity: { vcpus: 1, memoryMib: 64, diskGib: 1 },
      extraEnv: { CIRRUS_INSTANCES_DIR: instancesDir, CIRRUS_NET_PREFIX: stack.altNetPrefix },
    });
    const agentLogs = () => ["agent-kvm1", "agent-kvm2"].map((n) => readFileSync(`${stack.logDir}/${n}.log`, "utf8")).join("");
    // Past the 5 s grace, both agents have asked about both, and kept them.
    await waitUntil("both agents to keep what is not theirs to remove", async () => {
      for (const id of [keep, stranger]) if (stack.domState(id) !== "running" || !existsSync(file(id))) throw new Error(`${id} was wiped: domain ${stack.domState(id)}, disk ${existsSync(file(id)) ? "present" : "gone"}`);
      const kept = agentLogs().split("\n").filter((l) => l.includes("kept an instance the control plane did not ask for"));
      return kept.some((l) => l.includes(stranger)) && kept.some((l) => l.includes(keep));
    }, 60_000, 500);
    await new Promise((r) => setTimeout(r, 3000));
    for (const id of [keep, stranger]) {
      expect(stack.domState(id)).toBe("running");
      expect(existsSync(file(id))).toBe(true);
    }
    expect((await stack.instance(keep)).State?.Name).toBe("running");

    // The database restored to a backup from before `keep` was launched: kvm1 made
    // it for this host (its own record says so), so it is removed, into quarantine.
    await stack.pool.query("DELETE FROM instance_security_groups WHERE instance_id = $1", [keep]);
    await stack.pool.query("UPDATE addresses SET instance_id = NULL WHERE instance_id = $1", [keep]);
    await stack.pool.query("DELETE FROM instances WHERE id = $1", [keep]);
    const kvm1 = stack.agents.get("kvm1")!;
    await kvm1.restart(); // as after a restore: it asks for the host's state afresh
    await waitUntil("kvm1 to quarantine the instance the restored database does not know", async () => stack.domState(keep) === "absent" && !existsSync(file(keep)), 60_000, 500);
    const quarantined = readdirSync(`${instancesDir}/quarantine`).filter((n) => n.startsWith(`${stack.domainPrefix}${keep}.`));
    expect(quarantined.map((n) => n.replace(/\.\d+\./, ".<t>.")).sort()).toEqual([`${stack.domainPrefix}${keep}.<t>.console.log`, `${stack.domainPrefix}${keep}.<t>.qcow2`]);
    // The stranger is still nobody's to remove.
    expect(stack.domState(stranger)).toBe("running");
    expect(existsSync(file(stranger))).toBe(true);
    virsh("destroy", `${stack.domainPrefix}${stranger}`);
    virsh("undefine", `${stack.domainPrefix}${stranger}`);
  });
});
