// bench/query: the EC2 Query API against the gRPC API, same actions, same
// stack, one run: DescribeInstances of 1,000 instances in one page of 1,000
// and a RunInstances of one, each way (the Query side with the AWS SDK for
// JavaScript v3, the gRPC side with the signed ts-proto client the CLI
// uses), in rounds of alternating order after a warm-up; a third side
// sends the same signed Query request with plain HTTP and reads the XML
// without parsing it, to tell the server's and the wire's share from the
// SDK's XML parsing. Then DescribeInstances requests per second at
// concurrency 16 each way.
// Fake-driver host (what is measured is the API, not a hypervisor).
//
// Usage: npm run bench:query -- [--rounds 20] [--instances 1000] [--concurrency 16] [--seconds 10]
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { Stack } from "@cirrus/test";
import { signedPost } from "@cirrus/test/query";
import { option, report, runRounds } from "../src/stats.js";

const argv = process.argv.slice(2);
const rounds = Number(option(argv, "rounds", "20"));
const instances = Number(option(argv, "instances", "1000"));
const concurrency = Number(option(argv, "concurrency", "16"));
const seconds = Number(option(argv, "seconds", "10"));

/** Requests per second `call` sustains with `concurrency` in flight for `seconds`. */
async function throughput(call: () => Promise<unknown>): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      await call();
      done++;
    }
  }));
  return done / seconds;
}

const timed = async (work: () => Promise<unknown>) => {
  const t = performance.now();
  await work();
  return performance.now() - t;
};

async function main(): Promise<void> {
  const stack = new Stack({ apiEnv: { CIRRUS_LOG_LEVEL: "info" }, workerEnv: { CIRRUS_LOG_LEVEL: "info" } });
  try {
    await stack.start();
    const slots = instances + 2 * (rounds + 1) + 10;
    await stack.addAgent({ name: "bench", driver: "fake", capacity: { vcpus: slots, memoryMib: slots * 512, diskGib: slots } });
    const imageId = await stack.registerTestImage();
    const launched = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: instances, MaxCount: instances }, 600_000);
    await stack.waitForState(launched.Instances.map((i: { InstanceId: string }) => i.InstanceId), "running", 600_000);
    const ec2 = new EC2Client({ endpoint: stack.queryEndpoint, region: "lab-1", credentials: stack.key, maxAttempts: 1 });
    const count = (reservations: { Instances?: unknown[] }[] | undefined) => (reservations ?? []).reduce((n, r) => n + (r.Instances?.length ?? 0), 0);
    const describeQuery = async () => {
      const res = await ec2.send(new DescribeInstancesCommand({ MaxResults: 1000 }));
      if (count(res.Reservations) < instances) throw new Error(`Query DescribeInstances saw ${count(res.Reservations)} instances`);
    };
    const describeGrpc = async () => {
      const res = await stack.call("describeInstances", { MaxResults: 1000 });
      if (count(res.Reservations) < instances) throw new Error(`gRPC DescribeInstances saw ${count(res.Reservations)} instances`);
    };
    const run = { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 };

    const describeRaw = async () => {
      const res = await signedPost(stack.queryEndpoint, stack.key, "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000");
      if (res.status !== 200) throw new Error(`Query DescribeInstances answered ${res.status}`);
    };
    const describe = await runRounds(rounds, [
      { name: "Query (SDK) DescribeInstances", run: () => timed(describeQuery) },
      { name: "Query (HTTP, XML unparsed) DescribeInstances", run: () => timed(describeRaw) },
      { name: "gRPC DescribeInstances", run: () => timed(describeGrpc) },
    ]);
    console.log(report(`DescribeInstances of ${instances} instances (MaxResults 1000), wall time per call, ${rounds} rounds after a warm-up`, describe, `npm run bench:query -- --rounds ${rounds} --instances ${instances}`));
    const launch = await runRounds(rounds, [
      { name: "Query (SDK) RunInstances", run: () => timed(() => ec2.send(new RunInstancesCommand(run))) },
      { name: "gRPC RunInstances", run: () => timed(() => stack.call("runInstances", run)) },
    ]);
    console.log(report(`RunInstances of 1, wall time per call, ${rounds} rounds after a warm-up`, launch, `npm run bench:query -- --rounds ${rounds} --instances ${instances}`));

    const [queryRps, grpcRps] = [await throughput(describeQuery), await throughput(describeGrpc)];
    console.log(`\nDescribeInstances of ${instances} at concurrency ${concurrency}, ${seconds} s each: Query ${queryRps.toFixed(1)} requests/s, gRPC ${grpcRps.toFixed(1)} requests/s (Query / gRPC ${(queryRps / grpcRps).toFixed(2)}x)`);
    console.log(`reproduce: npm run bench:query -- --rounds ${rounds} --instances ${instances} --concurrency ${concurrency} --seconds ${seconds}`);
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
