// The aws CLI v2 (Debian's awscli), unchanged, against the real stack over
// the Query API with real signatures: a whole session (scripts/aws-cli-session.sh)
// on a libvirt host, and the errors it prints for what Cirrus refuses.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "../src/stack.js";

const stack = new Stack();
const exec = promisify(execFile);
let imageName = "";

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "kvm1", driver: "libvirt", capacity: { vcpus: 4, memoryMib: 4096, diskGib: 20 } });
  imageName = `aws-cli-${stack.runId}`;
  await stack.registerTestImage(imageName);
});
afterAll(() => stack.stop());

/** `aws <args>` as the default account; never throws for a non-zero exit. */
async function aws(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec("/usr/bin/aws", ["--endpoint-url", stack.queryEndpoint, ...args], { env: stack.cliEnv() });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("the aws CLI", () => {
  it("runs a whole session: images, key pairs, groups, run-instances and its waiters, filters, console, addresses, tags, stop/start/terminate", async () => {
    const work = mkdtempSync(join(tmpdir(), "aws-cli-"));
    const run = exec("bash", [join(import.meta.dirname, "scripts/aws-cli-session.sh")], { env: { ...stack.cliEnv(), ENDPOINT: stack.queryEndpoint, IMAGE_NAME: imageName, WORK: work }, timeout: 540_000 });
    const { stderr } = await run.catch((err: { stderr: string; message: string }) => {
      throw new Error(`aws-cli-session.sh failed:\n${err.stderr}`);
    });
    expect(stderr).toContain("aws CLI session: ok");
  }, 600_000);

  it("prints EC2's errors: NotFound, malformed ids, unknown parameters, and actions Cirrus does not implement", async () => {
    const notFound = await aws("ec2", "describe-instances", "--instance-ids", "i-0123456789abcdef0");
    expect(notFound.code).toBe(254);
    expect(notFound.stderr).toContain("An error occurred (InvalidInstanceID.NotFound) when calling the DescribeInstances operation");
    const malformed = await aws("ec2", "terminate-instances", "--instance-ids", "i-nope");
    expect(malformed.stderr).toContain("(InvalidInstanceID.Malformed)");
    const unsupported = await aws("ec2", "describe-spot-price-history");
    expect(unsupported.stderr).toContain("An error occurred (Unsupported) when calling the DescribeSpotPriceHistory operation: The action DescribeSpotPriceHistory is not supported by Cirrus yet.");
    const dry = await aws("ec2", "create-key-pair", "--key-name", "dry", "--dry-run");
    expect(dry.stderr).toContain("(DryRunOperation) when calling the CreateKeyPair operation: Request would have succeeded, but DryRun flag is set.");
    expect((await aws("ec2", "describe-key-pairs", "--key-names", "dry")).stderr).toContain("InvalidKeyPair.NotFound");
  });

  it("boto3 (Debian's python3-boto3) works with the profile and endpoint_url, as the README shows", async () => {
    const script = [
      "import boto3",
      `ec2 = boto3.Session(profile_name="cirrus").client("ec2", endpoint_url="${stack.queryEndpoint}")`,
      "print(ec2.describe_regions()['Regions'][0]['RegionName'])",
      `print(ec2.describe_images(Owners=['self'], Filters=[{'Name': 'name', 'Values': ['${imageName}']}])['Images'][0]['Name'])`,
      "print(len(ec2.describe_instances()['Reservations']) >= 0)",
    ].join("\n");
    const { stdout } = await exec("/usr/bin/python3", ["-c", script], { env: stack.cliEnv() });
    expect(stdout.trim().split("\n")).toEqual(["lab-1", imageName, "True"]);
  });

  it("refuses a wrong secret with AuthFailure and runs nothing", async () => {
    const { AWS_PROFILE: _, ...rest } = stack.cliEnv();
    const env = { ...rest, AWS_ACCESS_KEY_ID: stack.key.accessKeyId, AWS_SECRET_ACCESS_KEY: "wrong-secret-wrong-secret-wrong-secret-00", AWS_DEFAULT_REGION: "lab-1" };
    const r = await exec("/usr/bin/aws", ["ec2", "create-key-pair", "--key-name", "intruder", "--endpoint-url", stack.queryEndpoint], { env }).catch((e: { code: number; stderr: string }) => e);
    expect(r).toMatchObject({ code: 254, stderr: expect.stringContaining("(AuthFailure)") });
    expect((await aws("ec2", "describe-key-pairs", "--key-names", "intruder")).stderr).toContain("InvalidKeyPair.NotFound");
  });
});
