// bench/cli: the wall time of one `cirrus describe-instances` (a fresh
// process: start, parse, one gRPC call to a real API over 20 instances,
// print) against `node -e ''` (the cost of starting Node at all), measured
// alternately in the same run. Goal: under 300 ms.
//
// Usage: npm run bench:cli -- [rounds]   (default 20; needs Postgres, Redis and a built tree)
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot, Stack } from "@cirrus/test";
import { report, roundsOf, runRounds } from "../src/stats.js";

const exec = promisify(execFile);

async function timed(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  await exec(process.execPath, args, { env });
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const rounds = roundsOf(process.argv.slice(2), 20);
  const stack = new Stack();
  try {
    await stack.start();
    await stack.addAgent({ name: "bench", driver: "fake" });
    const imageId = await stack.registerTestImage();
    const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 20, MaxCount: 20 });
    await stack.waitForState(res.Instances.map((i: { InstanceId: string }) => i.InstanceId), "running");
    const env = stack.cliEnv();
    const sides = await runRounds(rounds, [
      { name: "cirrus describe-instances", run: () => timed([join(repoRoot, "services/cli/bin/cirrus.js"), "describe-instances"], env) },
      { name: "node -e ''", run: () => timed(["-e", ""], env) },
    ]);
    console.log(report(`one CLI call, wall time, ${rounds} rounds after a warm-up`, sides, "npm run bench:cli -- " + rounds));
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
