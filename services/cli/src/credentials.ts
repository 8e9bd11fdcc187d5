// Who the CLI signs as, found where the aws CLI looks: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (unless a profile is named), else the profile
// (--profile, AWS_PROFILE, "default") in the shared credentials and config
// files (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, else ~/.aws/…), read
// with the SDK's own parser. `npm run up` writes the "cirrus" profile.
import { homedir } from "node:os";
import { join } from "node:path";
import { loadSharedConfigFiles } from "@smithy/core/config";
import type { AccessKey } from "@cirrus/common";
import { CliError, ExitCode } from "./errors.js";

export interface Signer {
  key: AccessKey;
  region: string;
}

/** Cirrus's default region name, when neither the environment nor the profile names one. */
const DEFAULT_REGION = "lab-1";

/**
 * The key and region to sign with. Throws a CliError (exit 253, the aws
 * CLI's code for missing configuration) when no credentials are found, or a
 * named profile does not exist.
 */
export async function resolveSigner(env: Record<string, string | undefined>, flags: { profile?: string; region?: string }): Promise<Signer> {
  const profileName = flags.profile ?? env.AWS_PROFILE ?? "default";
  const home = env.HOME ?? homedir();
  const files = await loadSharedConfigFiles({
    filepath: env.AWS_SHARED_CREDENTIALS_FILE ?? join(home, ".aws", "credentials"),
    configFilepath: env.AWS_CONFIG_FILE ?? join(home, ".aws", "config"),
    ignoreCache: true,
  });
  const profile = { ...files.configFile[profileName], ...files.credentialsFile[profileName] };
  const region = flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? profile.region ?? DEFAULT_REGION;
  const named = flags.profile !== undefined || env.AWS_PROFILE !== undefined;
  if (!named && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return { key: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY }, region };
  }
  if (named && !files.configFile[profileName] && !files.credentialsFile[profileName]) {
    throw new CliError(`The config profile (${profileName}) could not be found`, ExitCode.config);
  }
  if (!profile.aws_access_key_id || !profile.aws_secret_access_key) {
    throw new CliError("Unable to locate credentials. You can configure credentials by running \"cirrus-admin create-access-key --write-aws-profile cirrus\" (npm run up does it) or \"aws configure\".", ExitCode.config);
  }
  return { key: { accessKeyId: profile.aws_access_key_id, secretAccessKey: profile.aws_secret_access_key }, region };
}
