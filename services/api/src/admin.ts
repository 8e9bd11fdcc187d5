// `cirrus-admin`: operator commands that act on the control plane's database
// directly, so only whoever holds its DATABASE_URL (the operator, on a
// control-plane machine) can run them. Output is JSON; failures print
// "An error occurred (Code): message" and exit 254, as the aws CLI does.
import { Command } from "commander";
import { createLogger } from "@cirrus/common";
import { connectionSchema, coreConfigSchema, Ec2Error, openPool, retireHost, withZones } from "@cirrus/core";

const log = createLogger("admin", { toStderr: true });

async function retire(hostId: string): Promise<void> {
  const config = withZones(connectionSchema.merge(coreConfigSchema).parse(process.env));
  const db = openPool(config, { max: 2, applicationName: "cirrus-admin", log });
  try {
    // Agents learn of the change at their next heartbeat; nothing is pushed from here.
    const terminated = await retireHost({ db, config, log, notifyHosts: () => undefined }, hostId);
    process.stdout.write(`${JSON.stringify({ HostId: hostId, TerminatedInstances: terminated }, null, 4)}\n`);
  } finally {
    await db.end();
  }
}

const program = new Command("cirrus-admin").description("Operator commands on the control plane's database (DATABASE_URL).");
program
  .command("retire-host")
  .description("Declare a dead host gone for good: its instances become terminated and release what they held; its agent is refused from then on.")
  .requiredOption("--host-id <id>", "the host (h-…), as DescribeHosts or the agent's log names it")
  .action((opts: { hostId: string }) => retire(opts.hostId));

program.parseAsync().catch((err: unknown) => {
  if (err instanceof Ec2Error) {
    process.stderr.write(`\nAn error occurred (${err.code}): ${err.message}\n`);
    process.exit(254);
  }
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(255);
});
