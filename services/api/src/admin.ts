// `cirrus-admin`: operator commands that act on the control plane's database
// directly, so only whoever holds its DATABASE_URL (the operator, on a
// control-plane machine) can run them. Output is JSON; failures print
// "An error occurred (Code): message" and exit 254, as the aws CLI does.
import { Command } from "commander";
import { homedir } from "node:os";
import type { Pool } from "pg";
import { createLogger } from "@cirrus/common";
import {
  connectionSchema, coreConfigSchema, createAccessKey, createAccount, deleteAccessKey, describeAccounts, Ec2Error, ensureDefaultNetwork,
  listAccessKeys, loadSecretsKey, openPool, retireHost, updateAccessKey, withZones, type AccessKeyStatus,
} from "@cirrus/core";
import { profileAccessKeyId, writeAwsProfile } from "./awsProfile.js";

const log = createLogger("admin", { toStderr: true });
type Config = ReturnType<typeof loadConfig>;

function loadConfig() {
  return withZones(connectionSchema.merge(coreConfigSchema).parse(process.env));
}

/** Runs `fn` with the database and prints what it returns as JSON. */
async function withDb(fn: (db: Pool, config: Config) => Promise<unknown>): Promise<void> {
  const config = loadConfig();
  const db = openPool(config, { max: 2, applicationName: "cirrus-admin", log });
  try {
    const result = await fn(db, config);
    if (result !== undefined) process.stdout.write(`${JSON.stringify(result, null, 4)}\n`);
  } finally {
    await db.end();
  }
}

const program = new Command("cirrus-admin").description("Operator commands on the control plane's database (DATABASE_URL).");

program
  .command("retire-host")
  .description("Declare a dead host gone for good: its instances become terminated and release what they held; its agent is refused from then on.")
  .requiredOption("--host-id <id>", "the host (h-…), as DescribeHosts or the agent's log names it")
  // Agents learn of the change at their next heartbeat; nothing is pushed from here.
  .action((opts: { hostId: string }) => withDb(async (db, config) => ({ HostId: opts.hostId, TerminatedInstances: await retireHost({ db, config, log, notifyHosts: () => undefined }, opts.hostId) })));

program
  .command("create-account")
  .description("Create an account (with its default VPC, as in AWS).")
  .requiredOption("--name <name>", "a unique name")
  .option("--account-id <id>", "12 digits (default: random)")
  .option("--operator", "the cloud's operator: may manage hosts and accounts")
  .action((opts: { name: string; accountId?: string; operator?: boolean }) => withDb(async (db, config) => {
    const account = await createAccount(db, { name: opts.name, ...(opts.accountId ? { accountId: opts.accountId } : {}), operator: opts.operator ?? false });
    await ensureDefaultNetwork({ db, config, log }, account.AccountId);
    return { Account: account };
  }));

program
  .command("describe-accounts")
  .description("List the accounts, or the one named.")
  .option("--account <id-or-name>")
  .action((opts: { account?: string }) => withDb(async (db) => ({ Accounts: await describeAccounts(db, opts.account) })));

program
  .command("create-access-key")
  .description("A new access key for an account. Its secret is shown this once (and written to the profile when asked).")
  .requiredOption("--account <id-or-name>")
  .option("--write-aws-profile <name>", "also write the key into ~/.aws/credentials and ~/.aws/config as this profile")
  .option("--endpoint-url <url>", "the profile's endpoint_url (the Query API)", "http://127.0.0.1:8773")
  .action((opts: { account: string; writeAwsProfile?: string; endpointUrl: string }) => withDb(async (db, config) => {
    const key = await createAccessKey(db, await loadSecretsKey(config.CIRRUS_SECRETS_KEY_FILE, { create: true }), opts.account);
    if (opts.writeAwsProfile) {
      await writeAwsProfile(homedir(), { name: opts.writeAwsProfile, accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey, region: config.CIRRUS_REGION, endpointUrl: opts.endpointUrl });
      // Written to the files (0600) rather than the terminal.
      const { SecretAccessKey: _, ...shown } = key;
      return { AccessKey: shown, Profile: opts.writeAwsProfile };
    }
    return { AccessKey: key };
  }));

program
  .command("ensure-aws-profile")
  .description("Make sure ~/.aws holds a working key of the account as this profile: kept when its key is the account's and active, else a new key is made and written.")
  .requiredOption("--account <id-or-name>")
  .requiredOption("--profile <name>")
  .option("--endpoint-url <url>", "the profile's endpoint_url (the Query API)", "http://127.0.0.1:8773")
  .action((opts: { account: string; profile: string; endpointUrl: string }) => withDb(async (db, config) => {
    const existing = await profileAccessKeyId(homedir(), opts.profile);
    const keys = await listAccessKeys(db, opts.account);
    const kept = keys.find((k) => k.AccessKeyId === existing && k.Status === "Active");
    if (kept) {
      // The key stays; region and endpoint are rewritten in case the configuration changed.
      return { AccessKey: kept, Profile: opts.profile, Created: false };
    }
    const key = await createAccessKey(db, await loadSecretsKey(config.CIRRUS_SECRETS_KEY_FILE, { create: true }), opts.account);
    await writeAwsProfile(homedir(), { name: opts.profile, accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey, region: config.CIRRUS_REGION, endpointUrl: opts.endpointUrl });
    const { SecretAccessKey: _, ...shown } = key;
    return { AccessKey: shown, Profile: opts.profile, Created: true };
  }));

program
  .command("list-access-keys")
  .description("An account's access keys (never their secrets).")
  .requiredOption("--account <id-or-name>")
  .action((opts: { account: string }) => withDb(async (db) => ({ AccessKeyMetadata: await listAccessKeys(db, opts.account) })));

program
  .command("update-access-key")
  .description("Enable (Active) or disable (Inactive) an access key; takes effect at the next request.")
  .requiredOption("--access-key-id <id>")
  .requiredOption("--status <status>", "Active or Inactive")
  .action((opts: { accessKeyId: string; status: string }) => withDb(async (db) => {
    if (opts.status !== "Active" && opts.status !== "Inactive") throw new Ec2Error("InvalidParameterValue", `Invalid status '${opts.status}': Active or Inactive.`);
    return { AccessKey: await updateAccessKey(db, opts.accessKeyId, opts.status as AccessKeyStatus) };
  }));

program
  .command("delete-access-key")
  .description("Delete an access key for good.")
  .requiredOption("--access-key-id <id>")
  .action((opts: { accessKeyId: string }) => withDb((db) => deleteAccessKey(db, opts.accessKeyId)));

program.parseAsync().catch((err: unknown) => {
  if (err instanceof Ec2Error) {
    process.stderr.write(`\nAn error occurred (${err.code}): ${err.message}\n`);
    process.exit(254);
  }
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(255);
});
