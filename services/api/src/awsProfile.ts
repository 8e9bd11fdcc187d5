// Writes one profile into the aws CLI's shared files (~/.aws/credentials and
// ~/.aws/config), so that `aws --profile cirrus ec2 …` (and boto3, the SDKs,
// Terraform and the cirrus CLI, which read the same files) reach Cirrus.
// Only that profile's section is replaced; every other line of the user's
// files, comments included, stays as it was.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadSharedConfigFiles } from "@smithy/core/config";

export interface AwsProfile {
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  endpointUrl: string;
}

/** `text` with the section headed `header` (e.g. "[profile cirrus]") replaced by `lines`, or them appended. */
export function replaceSection(text: string, header: string, lines: readonly string[]): string {
  const out: string[] = [];
  let inSection = false;
  let written = false;
  for (const line of text.split("\n")) {
    if (/^\s*\[.*\]\s*$/.test(line)) {
      inSection = line.trim() === header;
      if (inSection) {
        out.push(header, ...lines);
        written = true;
        continue;
      }
    }
    if (!inSection) out.push(line);
  }
  while (out.length && out.at(-1) === "") out.pop();
  if (!written) out.push(...(out.length ? [""] : []), header, ...lines);
  return `${out.join("\n")}\n`;
}

async function rewrite(path: string, edit: (text: string) => string): Promise<void> {
  const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return "";
    throw err;
  });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, edit(text), { mode: 0o600 });
  await rename(tmp, path);
}

/**
 * Writes `profile` to `<home>/.aws/credentials` (keys) and `<home>/.aws/config`
 * (region, endpoint_url), creating the directory (0700) and files (0600) as
 * needed. Postcondition: both files hold exactly one section for the profile.
 */
export async function writeAwsProfile(home: string, profile: AwsProfile): Promise<void> {
  const dir = join(home, ".aws");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await rewrite(join(dir, "credentials"), (text) =>
    replaceSection(text, `[${profile.name}]`, [`aws_access_key_id = ${profile.accessKeyId}`, `aws_secret_access_key = ${profile.secretAccessKey}`]));
  // The config file names profiles "[profile x]" except the default one.
  const header = profile.name === "default" ? "[default]" : `[profile ${profile.name}]`;
  await rewrite(join(dir, "config"), (text) => replaceSection(text, header, [`region = ${profile.region}`, `endpoint_url = ${profile.endpointUrl}`, "output = json"]));
}

/** The access key id the profile holds in `<home>/.aws/credentials` (read with the SDK's parser), if any. */
export async function profileAccessKeyId(home: string, name: string): Promise<string | undefined> {
  const files = await loadSharedConfigFiles({ filepath: join(home, ".aws", "credentials"), configFilepath: join(home, ".aws", "config"), ignoreCache: true });
  return files.credentialsFile[name]?.aws_access_key_id;
}
