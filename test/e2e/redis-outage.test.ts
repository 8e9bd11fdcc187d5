// Postgres is the truth, Redis only carries jobs: with Redis down,
// RunInstances still answers from Postgres after its commit, and the launch
// completes once Redis is back (the sweeper queues what was never queued).
// The stack gets a Redis server of its own, so stopping it touches nothing else.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, Stack } from "../src/stack.js";

let redisPort = 0;
let redis: ChildProcess | undefined;

function startRedis(): ChildProcess {
  const p = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  redis = p;
  return p;
}

async function stopRedis(): Promise<void> {
  const p = redis;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, "exit");
  p.kill("SIGKILL");
  await exited;
}

let stack: Stack;
let imageId = "";

beforeAll(async () => {
  redisPort = await freePort();
  startRedis();
  stack = new Stack({ redisUrl: `redis://127.0.0.1:${redisPort}` });
  await stack.start();
  await stack.addAgent({ name: "kvm1", driver: "libvirt", capacity: { vcpus: 2, memoryMib: 2048, diskGib: 10 } });
  imageId = await stack.registerTestImage();
});
afterAll(async () => {
  await stack?.stop();
  await stopRedis();
});

describe("Redis down", () => {
  it("RunInstances answers from Postgres after its commit, and the launch completes once Redis is back", async () => {
    await stopRedis();
    const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 }, 20_000);
    const id: string = res.Instances[0].InstanceId;
    expect(res.Instances[0].State.Name).toBe("pending");
    expect((await stack.instance(id)).State?.Name).toBe("pending");
    startRedis();
    // The worker reconnects; the sweeper finds the step stale (8 s in tests) and queues it.
    await stack.waitForState([id], "running", 120_000);
    expect(stack.domState(id)).toBe("running");
    await stack.call("terminateInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "terminated");
  });
});
