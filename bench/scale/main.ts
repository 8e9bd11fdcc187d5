// bench/scale: the control plane at fleet scale, on the fake driver.
//   (a) One RunInstances of MaxCount (default 100000) t2.nano into a subnet
//       large enough for it: placements per second (instances placed / the
//       call's wall time), then the time until every instance is `running`.
//   (b) 50 concurrent RunInstances of 100 each, against the same work done
//       sequentially: instances placed per second each way, and the probe
//       host's heartbeat round trip (p50/p99) during the concurrent storm,
//       against the same probe on the idle control plane.
// N fake hosts (default 1000) register through the real HostControl API from
// one child process (fleet.ts); a probe host in another (probe.ts) times
// its heartbeats. The API, the worker, Postgres and Redis are real.
//
// Usage: npm run bench:scale -- [--hosts 1000] [--count 100000] [--storm 50x100]
import { fork } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Stack, waitUntil } from "@cirrus/test";
import { cpuSeconds, option, percentile, pidsOf, summarize } from "../src/stats.js";

const argv = process.argv.slice(2);
const hosts = Number(option(argv, "hosts", "1000"));
const count = Number(option(argv, "count", "100000"));
const [stormCalls, stormEach] = option(argv, "storm", "50x100").split("x").map(Number) as [number, number];
const heartbeatMs = Number(option(argv, "heartbeat-ms", "5000"));
/** vCPUs per fake host: room for the big launch and both storms (t2.nano: 1 vCPU, 512 MiB, 1 GiB disk), with a fifth to spare. */
const vcpusPerHost = Math.ceil(((count + 2 * stormCalls * stormEach) * 1.2) / hosts);

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  // Logging at info, as deployed (the test stack's debug logs every call).
  const stack = new Stack({
    apiEnv: { CIRRUS_LOG_LEVEL: "info", CIRRUS_VPC_MIN_PREFIX: "13", CIRRUS_HOST_DEAD_AFTER_MS: String(heartbeatMs * 6) },
    workerEnv: { CIRRUS_LOG_LEVEL: "info", CIRRUS_WORKER_CONCURRENCY: "32" },
  });
  const fleetDir = join(stack.workDir, "fleet");
  mkdirSync(fleetDir, { recursive: true });
  let fleet: ReturnType<typeof fork> | undefined;
  let probe: ReturnType<typeof fork> | undefined;
  try {
    await stack.start();
    const t0 = performance.now();
    fleet = fork(new URL("./fleet.ts", import.meta.url).pathname, [], {
      execArgv: ["--import", "tsx"],
      env: {
        ...process.env, CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${stack.controlPort}`, CIRRUS_ENROLMENT_TOKEN: stack.enrolmentToken,
        FLEET_SIZE: String(hosts), FLEET_STATE_DIR: fleetDir,
        CIRRUS_HEARTBEAT_MS: String(heartbeatMs), CIRRUS_CAPACITY_VCPUS: String(vcpusPerHost), CIRRUS_CAPACITY_MEMORY_MIB: String(vcpusPerHost * 512), CIRRUS_CAPACITY_DISK_GIB: String(vcpusPerHost),
        CIRRUS_ORPHAN_GRACE_MS: "600000",
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    probe = fork(new URL("./probe.ts", import.meta.url).pathname, [], {
      execArgv: ["--import", "tsx"],
      env: { ...process.env, CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${stack.controlPort}`, CIRRUS_ENROLMENT_TOKEN: stack.enrolmentToken },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const messages: unknown[] = [];
    probe.on("message", (m) => messages.push(m));
    const probeSamples = async (): Promise<number[]> => {
      const before = messages.length;
      probe!.send({ take: true });
      await waitUntil("probe samples", async () => messages.length > before, 60_000, 20);
      return (messages.at(-1) as { samples: number[] }).samples;
    };
    await waitUntil(`${hosts} hosts alive`, async () => {
      const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM host_heartbeats WHERE last_heartbeat_at > now() - interval '30 seconds'");
      return rows[0].n >= hosts;
    }, 600_000, 1000);
    console.log(`${hosts} fake hosts registered through HostControl in ${s(performance.now() - t0)}`);

    const imageId = await stack.registerTestImage();
    const vpc = (await stack.call("createVpc", { CidrBlock: "10.128.0.0/13" })).Vpc.VpcId;
    const subnet = (await stack.call("createSubnet", { VpcId: vpc, CidrBlock: "10.128.0.0/14" })).Subnet;
    // A group with no rule naming a group: firewall state stays linear in the instances.
    const group = (await stack.call("createSecurityGroup", { GroupName: "scale", Description: "bench/scale", VpcId: vpc })).GroupId;
    console.log(`subnet ${subnet.CidrBlock}: ${subnet.AvailableIpAddressCount} free addresses`);
    /** CPU seconds each part of the system has used so far. */
    const cpu = () => ({
      api: cpuSeconds(stack.api.child!.pid!),
      worker: cpuSeconds(stack.workers[0]!.child!.pid!),
      fleet: cpuSeconds(fleet!.pid!),
      postgres: pidsOf("postgres").reduce((n, pid) => n + cpuSeconds(pid), 0),
      redis: pidsOf("redis-server").reduce((n, pid) => n + cpuSeconds(pid), 0),
    });
    const cpuLine = (before: ReturnType<typeof cpu>) => {
      const now = cpu();
      return `    CPU seconds: ${Object.entries(now).map(([k, v]) => `${k} ${(v - before[k as keyof typeof now]).toFixed(1)}`).join(", ")}`;
    };
    const launch = (n: number) => stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: n, MaxCount: n, SubnetId: subnet.SubnetId, SecurityGroupIds: [group] }, 600_000);
    const running = async (reservation: string) =>
      (await stack.pool.query("SELECT count(*) FILTER (WHERE state = 'running')::int AS n FROM instances WHERE reservation_id = $1", [reservation])).rows[0].n as number;

    // (a) one big launch.
    await probeSamples();
    const cpuA = cpu();
    const a0 = performance.now();
    const big = await launch(count);
    const placedMs = performance.now() - a0;
    await waitUntil(`${count} instances running`, async () => (await running(big.ReservationId)) === count, 900_000, 500);
    const runningMs = performance.now() - a0 - placedMs;
    console.log(`\n(a) one RunInstances of ${count}: placed in ${s(placedMs)} (${Math.round(count / (placedMs / 1000))} placements/s); all running ${s(runningMs)} later`);
    console.log(cpuLine(cpuA));

    // (b) concurrent against sequential, and heartbeats during the storm
    // against heartbeats on the quiet control plane just before it.
    await new Promise((r) => setTimeout(r, heartbeatMs));
    await probeSamples();
    await new Promise((r) => setTimeout(r, 2 * heartbeatMs));
    const idle = await probeSamples();
    const cpuB = cpu();
    const c0 = performance.now();
    await Promise.all(Array.from({ length: stormCalls }, () => launch(stormEach)));
    const concurrentMs = performance.now() - c0;
    const storm = await probeSamples();
    const stormCpu = cpuLine(cpuB);
    const q0 = performance.now();
    for (let i = 0; i < stormCalls; i++) await launch(stormEach);
    const sequentialMs = performance.now() - q0;
    const total = stormCalls * stormEach;
    console.log(`\n(b) ${stormCalls} RunInstances of ${stormEach}:`);
    console.log(`    concurrent  ${s(concurrentMs)}  ${Math.round(total / (concurrentMs / 1000))} instances/s`);
    console.log(`    sequential  ${s(sequentialMs)}  ${Math.round(total / (sequentialMs / 1000))} instances/s`);
    console.log(`    concurrent / sequential throughput: ${(sequentialMs / concurrentMs).toFixed(2)}x`);
    console.log(`  during the concurrent storm:\n${stormCpu}`);
    const line = (name: string, xs: number[]) => {
      const m = summarize(xs);
      return `    ${name.padEnd(22)} n=${String(m.n).padStart(4)}  p50 ${percentile(xs, 50).toFixed(1)} ms  p99 ${percentile(xs, 99).toFixed(1)} ms  max ${m.max.toFixed(1)} ms`;
    };
    console.log("    probe heartbeat round trip:");
    console.log(line("quiet control plane", idle));
    console.log(line("during the storm", storm));
    console.log(`\nreproduce: npm run bench:scale -- --hosts ${hosts} --count ${count} --storm ${stormCalls}x${stormEach}`);
  } finally {
    probe?.send({ stop: true });
    fleet?.send({ stop: true });
    await new Promise((r) => setTimeout(r, 2500));
    fleet?.kill("SIGKILL");
    probe?.kill("SIGKILL");
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
