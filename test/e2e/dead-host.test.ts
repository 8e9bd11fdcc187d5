// Every state has an exit: an instance on a host that died is terminated by
// the user (it stays shutting-down, holding what it had, while the host might
// still come back and say otherwise), then the operator retires the host,
// which ends it and releases its capacity, private address and elastic IP.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
let hostId = "";
let imageId = "";

beforeAll(async () => {
  await stack.start();
  ({ hostId } = await stack.addAgent({ name: "kvm1", driver: "libvirt", capacity: { vcpus: 2, memoryMib: 2048, diskGib: 10 } }));
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

/** Runs `cirrus-admin` against the stack's database; never throws for a non-zero exit. */
function admin(...args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [join(repoRoot, "services/api/bin/cirrus-admin.js"), ...args], {
      env: { ...process.env, DATABASE_URL: stack.databaseUrl, CIRRUS_HOST_DEAD_AFTER_MS: "15000" }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
    });
    return { code: 0, stdout, stderr: "" };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

const held = async (id: string) => (await stack.pool.query(
  `SELECT (SELECT used_vcpus FROM hosts WHERE id = $2) AS used_vcpus,
          (SELECT count(*)::int FROM subnet_addresses WHERE instance_id = $1) AS private_addresses,
          (SELECT count(*)::int FROM addresses WHERE instance_id = $1) AS elastic_ips`, [id, hostId])).rows[0];

describe("a host that died", () => {
  it("cannot be retired while alive; once dead, its terminated instance is ended by retiring it, releasing all it held", async () => {
    const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
    const id: string = res.Instances[0].InstanceId;
    await stack.waitForState([id], "running", 180_000);
    const { AllocationId } = await stack.call("allocateAddress", { Domain: "vpc" });
    await stack.call("associateAddress", { AllocationId, InstanceId: id });
    expect(await held(id)).toEqual({ used_vcpus: 1, private_addresses: 1, elastic_ips: 1 });

    const refused = admin("retire-host", "--host-id", hostId);
    expect(refused.code).toBe(254);
    expect(refused.stderr).toContain("(IncorrectHostState)");

    // The host dies (its agent is gone; the guest, libvirt's, runs on where nobody can see it).
    await stack.agents.get("kvm1")!.kill("SIGKILL");
    await stack.call("terminateInstances", { InstanceIds: [id] });
    await waitUntil("the host to be dead", async () => (await stack.pool.query("SELECT last_heartbeat_at < now() - interval '16 seconds' AS dead FROM host_heartbeats WHERE host_id = $1", [hostId])).rows[0]?.dead, 60_000, 1000);
    // Nobody can confirm it is gone: it stays shutting-down, holding everything, while the sweeper retries.
    expect((await stack.instance(id)).State?.Name).toBe("shutting-down");
    expect(await held(id)).toEqual({ used_vcpus: 1, private_addresses: 1, elastic_ips: 1 });

    const retired = admin("retire-host", "--host-id", hostId);
    expect(retired.code).toBe(0);
    expect(JSON.parse(retired.stdout)).toEqual({ HostId: hostId, TerminatedInstances: [id] });
    const after = await stack.instance(id);
    expect(after.State?.Name).toBe("terminated");
    expect(after.StateReason?.Message).toContain("host was retired");
    expect(await held(id)).toEqual({ used_vcpus: 0, private_addresses: 0, elastic_ips: 0 });
    // The elastic IP stays allocated to the account, as in EC2.
    expect((await stack.call("describeAddresses", { AllocationIds: [AllocationId] })).Addresses).toHaveLength(1);

    // A retired host takes no instances, and its agent is refused if the machine comes back.
    const launch = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 }).then(() => "launched", (e: { details?: string }) => e.details ?? "");
    expect(launch).toMatch(/^InsufficientInstanceCapacity/);
    stack.agents.get("kvm1")!.start();
    await new Promise((r) => setTimeout(r, 5000));
    expect((await stack.pool.query("SELECT count(*)::int AS n FROM host_heartbeats WHERE host_id = $1 AND last_heartbeat_at > now() - interval '4 seconds'", [hostId])).rows[0].n).toBe(0);
    expect(admin("retire-host", "--host-id", "h-0123456789abcdef0").stderr).toContain("(InvalidHostId.NotFound)");
  });
});
