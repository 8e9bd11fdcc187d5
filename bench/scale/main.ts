// bench/scale: the control plane at fleet scale, on the fake driver.
//   (a) One RunInstances of MaxCount (default 100000) t2.nano into a subnet
//       large enough for it: placements per second (instances placed / the
//       call's wall time), then the time until every instance is `running`.
//   (b) 50 concurrent RunInstances of 100 each, against the same work done
//       sequentially, in rounds of alternating order after a warm-up, each
//       once every earlier change is pushed: instances placed per second each
//       way (medians), and the probe host's heartbeat round trip (p50/p99)
//       during the concurrent storms, against the same probe on the idle
//       control plane.
// N fake hosts (default 1000) register through the real HostControl API from
// one child process (fleet.ts); a probe host in another (probe.ts) times
// its heartbeats. The API, the worker, Postgres and Redis are real.
//
// Usage: npm run bench:scale -- [--hosts 1000] [--count 100000] [--storm 50x100] [--rounds 5] [--heartbeat-ms 5000] [--probe-ms 20] [--fleet-nice 19]
import { fork } from "node:child_process";
import { mkdirSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import { Stack, waitUntil } from "@cirrus/test";
import { cpuSeconds, median, option, percentile, pidsOf, runRounds, summarize } from "../src/stats.js";

const argv = process.argv.slice(2);
const hosts = Number(option(argv, "hosts", "1000"));
const count = Number(option(argv, "count", "100000"));
const [stormCalls, stormEach] = option(argv, "storm", "50x100").split("x").map(Number) as [number, number];
/** Counted rounds of (b), each a sequential and a concurrent storm, after a warm-up round. */
const stormRounds = Number(option(argv, "rounds", "5"));
const heartbeatMs = Number(option(argv, "heartbeat-ms", "5000"));
/**
 * The fleet's nice value. Its 1,000 agents stand for 1,000 other machines,
 * whose CPU a real control plane never shares; on one machine the fleet at
 * equal priority competes with the control plane under test (0 to compare).
 */
const fleetNice = Number(option(argv, "fleet-nice", "19"));
/** The probe's pause between heartbeats: short, so that a storm of a few seconds gives enough samples for a p99. */
const probeMs = Number(option(argv, "probe-ms", "20"));
/** vCPUs per fake host: room for the big launch and every round's two storms (t2.nano: 1 vCPU, 512 MiB, 1 GiB disk), with a fifth to spare. */
const vcpusPerHost = Math.ceil(((count + 2 * (stormRounds + 1) * stormCalls * stormEach) * 1.2) / hosts);

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
        ...process.env, CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${stack.controlPort}`, CIRRUS_CONTROL_CA: stack.caFile, CIRRUS_ENROLMENT_TOKEN: stack.enrolmentToken,
        FLEET_SIZE: String(hosts), FLEET_STATE_DIR: fleetDir,
        CIRRUS_HEARTBEAT_MS: String(heartbeatMs), CIRRUS_CAPACITY_VCPUS: String(vcpusPerHost), CIRRUS_CAPACITY_MEMORY_MIB: String(vcpusPerHost * 512), CIRRUS_CAPACITY_DISK_GIB: String(vcpusPerHost),
        CIRRUS_ORPHAN_GRACE_MS: "600000",
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    setPriority(fleet.pid!, fleetNice);
    probe = fork(new URL("./probe.ts", import.meta.url).pathname, [], {
      execArgv: ["--import", "tsx"],
      env: { ...process.env, CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${stack.controlPort}`, CIRRUS_CONTROL_CA: stack.caFile, CIRRUS_ENROLMENT_TOKEN: stack.enrolmentToken, CIRRUS_PROBE_MS: String(probeMs) },
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
    type Cpu = ReturnType<typeof cpu>;
    const zeroCpu = (): Cpu => ({ api: 0, worker: 0, fleet: 0, postgres: 0, redis: 0 });
    /** Adds the CPU seconds used since `before` to `sum`. */
    const addCpu = (sum: Cpu, before: Cpu) => {
      const now = cpu();
      for (const k of Object.keys(now) as (keyof Cpu)[]) sum[k] += now[k] - before[k];
    };
    const cpuText = (c: Cpu, per = 1) => Object.entries(c).map(([k, v]) => `${k} ${(v / per).toFixed(1)}`).join(", ");
    const cpuLine = (before: Cpu) => {
      const used = zeroCpu();
      addCpu(used, before);
      return `    CPU seconds: ${cpuText(used)}`;
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

    /** Until every change so far is compiled (pushed), so that no phase runs on the last one's pushes. */
    const settled = () => waitUntil("host states compiled", async () => {
      const { rows } = await stack.pool.query("SELECT count(*)::int AS n FROM host_state_changes");
      return rows[0].n === 0;
    }, 600_000, 200);

    // (b) concurrent against sequential, in rounds of alternating order after
    // a warm-up, each on a settled control plane; heartbeats during every
    // concurrent storm against heartbeats on the quiet control plane before.
    await settled();
    await new Promise((r) => setTimeout(r, heartbeatMs));
    await probeSamples();
    await new Promise((r) => setTimeout(r, 2 * heartbeatMs));
    const idle = await probeSamples();
    const storm: number[] = [];
    const cpuOf = { sequential: cpu(), concurrent: cpu() };
    const spent = { sequential: zeroCpu(), concurrent: zeroCpu() };
    const timed = (name: "sequential" | "concurrent", work: () => Promise<unknown>) => async (round: number): Promise<number> => {
      await settled();
      await probeSamples();
      cpuOf[name] = cpu();
      const t = performance.now();
      await work();
      const ms = performance.now() - t;
      if (round > 0) {
        addCpu(spent[name], cpuOf[name]);
        if (name === "concurrent") storm.push(...(await probeSamples()));
      }
      return ms;
    };
    const results = await runRounds(stormRounds, [
      { name: "sequential", run: timed("sequential", async () => { for (let i = 0; i < stormCalls; i++) await launch(stormEach); }) },
      { name: "concurrent", run: timed("concurrent", () => Promise.all(Array.from({ length: stormCalls }, () => launch(stormEach)))) },
    ]);
    const total = stormCalls * stormEach;
    const [sequentialMs, concurrentMs] = results.map((r) => median(r.ms)) as [number, number];
    console.log(`\n(b) ${stormCalls} RunInstances of ${stormEach}, ${stormRounds} rounds after a warm-up, medians:`);
    console.log(`    concurrent  ${s(concurrentMs)}  ${Math.round(total / (concurrentMs / 1000))} instances/s`);
    console.log(`    sequential  ${s(sequentialMs)}  ${Math.round(total / (sequentialMs / 1000))} instances/s`);
    console.log(`    concurrent / sequential throughput (ratio of medians): ${(sequentialMs / concurrentMs).toFixed(2)}x`);
    console.log(`  CPU seconds per round, concurrent: ${cpuText(spent.concurrent, stormRounds)}`);
    console.log(`  CPU seconds per round, sequential: ${cpuText(spent.sequential, stormRounds)}`);
    const line = (name: string, xs: number[]) => {
      const m = summarize(xs);
      return `    ${name.padEnd(22)} n=${String(m.n).padStart(4)}  p50 ${percentile(xs, 50).toFixed(1)} ms  p99 ${percentile(xs, 99).toFixed(1)} ms  max ${m.max.toFixed(1)} ms`;
    };
    console.log("    probe heartbeat round trip:");
    console.log(line("quiet control plane", idle));
    console.log(line("during the storms", storm));
    console.log(`\nreproduce: npm run bench:scale -- --hosts ${hosts} --count ${count} --storm ${stormCalls}x${stormEach} --rounds ${stormRounds} --heartbeat-ms ${heartbeatMs} --probe-ms ${probeMs} --fleet-nice ${fleetNice}`);
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
