// The EC2 Query API's edge, with raw HTTP requests against the real stack:
// what SigV4 refuses (and that nothing is written when it does), what bad
// input gets (EC2's error XML with a 4xx, never a 500 or a crash), and the
// protocol's own answers (InvalidAction, Unsupported, NoSuchVersion, STS).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCode, presignedPath, sendRaw, signedHeaders, signedPost, type QueryAnswer } from "../src/query.js";
import { repoRoot, Stack } from "../src/stack.js";

const exec = promisify(execFile);

const stack = new Stack();
beforeAll(() => stack.start(0));
afterAll(() => stack.stop());

const keyPairs = async () => (await stack.pool.query<{ name: string }>("SELECT name FROM key_pairs ORDER BY name")).rows.map((r) => r.name);
const form = (params: Record<string, string>) => new URLSearchParams({ Version: "2016-11-15", ...params }).toString();
const post = (body: string | Buffer) => signedPost(stack.queryEndpoint, stack.key, body);

function expectError(answer: QueryAnswer, status: number, code: string): void {
  expect({ status: answer.status, code: errorCode(answer) }, answer.body).toEqual({ status, code });
  expect(answer.contentType).toBe("text/xml;charset=UTF-8");
  expect(answer.body).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>[^<]+<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/);
}

describe("SigV4 at the Query API", () => {
  it("runs a correctly signed request, and refuses each tampering with EC2's code, writing nothing", async () => {
    const ok = await post(form({ Action: "CreateKeyPair", KeyName: "signed" }));
    expect(ok.status, ok.body).toBe(200);
    expect(ok.body).toContain('<CreateKeyPairResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>');

    const body = form({ Action: "CreateKeyPair", KeyName: "a" });
    const headers = await signedHeaders(stack.queryEndpoint, stack.key, body);
    // The body changed after signing.
    expectError(await sendRaw(stack.queryEndpoint, { headers, body: form({ Action: "CreateKeyPair", KeyName: "b" }) }), 401, "AuthFailure");
    // A signed header changed after signing.
    expectError(await sendRaw(stack.queryEndpoint, { headers: { ...headers, "content-type": "application/x-www-form-urlencoded" }, body }), 401, "AuthFailure");
    // A wrong secret.
    expectError(await signedPost(stack.queryEndpoint, { ...stack.key, secretAccessKey: "x".repeat(40) }, body), 401, "AuthFailure");
    // An unknown key.
    expectError(await signedPost(stack.queryEndpoint, { accessKeyId: "AKIAAAAAAAAAAAAAAAAA", secretAccessKey: "x".repeat(40) }, body), 401, "AuthFailure");
    // Signed 20 minutes ago, and 20 minutes ahead.
    expectError(await signedPost(stack.queryEndpoint, stack.key, body, { date: new Date(Date.now() - 20 * 60_000) }), 400, "RequestExpired");
    expectError(await signedPost(stack.queryEndpoint, stack.key, body, { date: new Date(Date.now() + 20 * 60_000) }), 400, "RequestExpired");
    // Not signed at all.
    expectError(await sendRaw(stack.queryEndpoint, { headers: { "content-type": "application/x-www-form-urlencoded" }, body }), 400, "MissingParameter");
    expect(await keyPairs()).toEqual(["signed"]);
  });

  it("accepts a presigned GET within its expiry and refuses it after", async () => {
    const fresh = await presignedPath(stack.queryEndpoint, stack.key, { Action: "CreateKeyPair", Version: "2016-11-15", KeyName: "presigned" }, { expiresIn: 300 });
    const ok = await sendRaw(stack.queryEndpoint, { method: "GET", path: fresh, headers: {} });
    expect(ok.status, ok.body).toBe(200);
    // Signed ten minutes ago, valid for one.
    const stale = await presignedPath(stack.queryEndpoint, stack.key, { Action: "CreateKeyPair", Version: "2016-11-15", KeyName: "stale" }, { date: new Date(Date.now() - 10 * 60_000), expiresIn: 60 });
    expectError(await sendRaw(stack.queryEndpoint, { method: "GET", path: stale, headers: {} }), 400, "RequestExpired");
    // The URL's query changed after signing.
    expectError(await sendRaw(stack.queryEndpoint, { method: "GET", path: fresh.replace("KeyName=presigned", "KeyName=other"), headers: {} }), 401, "AuthFailure");
    expect(await keyPairs()).toEqual(["presigned", "signed"]);
  });

  it("refuses a disabled key from the next request on, and accepts it again once enabled", async () => {
    const b = await stack.newAccount("keys");
    const key = { accessKeyId: b.accessKeyId, secretAccessKey: b.secretAccessKey };
    const describe = () => signedPost(stack.queryEndpoint, key, form({ Action: "DescribeKeyPairs" }));
    expect((await describe()).status).toBe(200);
    await stack.admin("update-access-key", "--access-key-id", key.accessKeyId, "--status", "Inactive");
    expectError(await describe(), 401, "AuthFailure");
    expectError(await signedPost(stack.queryEndpoint, key, form({ Action: "CreateKeyPair", KeyName: "disabled" })), 401, "AuthFailure");
    await stack.admin("update-access-key", "--access-key-id", key.accessKeyId, "--status", "Active");
    expect((await describe()).status).toBe(200);
    await stack.admin("delete-access-key", "--access-key-id", key.accessKeyId);
    expectError(await describe(), 401, "AuthFailure");
    expect(await keyPairs()).toEqual(["presigned", "signed"]);
  });
});

describe("cirrus admin", () => {
  it("manages accounts and keys on the database, as cirrus-admin does", async () => {
    const bin = join(repoRoot, "services/cli/bin/cirrus.js");
    const env = { ...stack.cliEnv(), DATABASE_URL: stack.databaseUrl, CIRRUS_SECRETS_KEY_FILE: stack.secretsKeyFile };
    const made = JSON.parse((await exec(process.execPath, [bin, "admin", "create-account", "--name", "via-cli", "--account-id", "555555555555"], { env })).stdout);
    expect(made.Account).toMatchObject({ AccountId: "555555555555", Name: "via-cli", Operator: false });
    const key = JSON.parse((await exec(process.execPath, [bin, "admin", "create-access-key", "--account", "via-cli"], { env })).stdout).AccessKey;
    const answer = await signedPost(stack.queryEndpoint, { accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey }, form({ Action: "DescribeVpcs" }));
    // The new account has its default VPC, and sees only its own.
    expect(answer.body.match(/<isDefault>true<\/isDefault>/g)).toHaveLength(1);
    expect(answer.body).toContain("<ownerId>555555555555</ownerId>");
    expect(answer.body).not.toContain(`<ownerId>${stack.defaultAccountId}</ownerId>`);
    // Its failures exit as the aws CLI's do, with EC2-style codes.
    const dup = await exec(process.execPath, [bin, "admin", "create-account", "--name", "via-cli"], { env }).catch((e: { code: number; stderr: string }) => e);
    expect(dup).toMatchObject({ code: 254, stderr: expect.stringContaining("An error occurred (EntityAlreadyExists)") });
  });
});

describe("bad input over HTTP", () => {
  it("answers EC2's error XML with a 4xx for each kind of malformed request, and writes nothing", async () => {
    const cases: [string, string | Buffer, string][] = [
      ["malformed escape", "Action=CreateKeyPair&Version=2016-11-15&KeyName=%zz", "InvalidParameterValue"],
      ["invalid UTF-8", Buffer.concat([Buffer.from("Action=CreateKeyPair&Version=2016-11-15&KeyName="), Buffer.from([0xc3, 0x28])]), "InvalidParameterValue"],
      ["invalid UTF-8, escaped", "Action=CreateKeyPair&Version=2016-11-15&KeyName=%C3%28", "InvalidParameterValue"],
      ["duplicate list index", form({ Action: "DescribeInstances" }) + "&InstanceId.1=i-0123456789abcdef0&InstanceId.1=i-0123456789abcdef1", "InvalidParameterValue"],
      ["gapped list index", form({ Action: "DescribeInstances", "InstanceId.1": "i-0123456789abcdef0", "InstanceId.3": "i-0123456789abcdef1" }), "InvalidParameterValue"],
      ["zero list index", form({ Action: "DescribeInstances", "InstanceId.0": "i-0123456789abcdef0" }), "InvalidParameterValue"],
      ["unknown parameter", form({ Action: "CreateKeyPair", KeyName: "u", Colour: "blue" }), "UnknownParameter"],
      ["parameter EC2 has and Cirrus does not", form({ Action: "RunInstances", ImageId: "ami-0123456789abcdef0", MinCount: "1", MaxCount: "1", "IamInstanceProfile.Name": "x" }), "Unsupported"],
      ["not a number", form({ Action: "RunInstances", ImageId: "ami-0123456789abcdef0", MinCount: "one", MaxCount: "1" }), "InvalidParameterValue"],
      ["not a boolean", form({ Action: "StopInstances", "InstanceId.1": "i-0123456789abcdef0", Force: "yes" }), "InvalidParameterValue"],
      ["1 MiB parameter", form({ Action: "CreateKeyPair", KeyName: "k".repeat(1024 * 1024) }), "InvalidParameterValue"],
      ["wrong Version", "Action=DescribeRegions&Version=2014-01-01", "NoSuchVersion"],
      ["no Version", "Action=DescribeRegions", "MissingParameter"],
      ["no Action", "Version=2016-11-15", "MissingAction"],
      ["two Actions", "Action=DescribeRegions&Action=DescribeImages&Version=2016-11-15", "InvalidParameterValue"],
      ["unknown action", form({ Action: "LaunchRockets" }), "InvalidAction"],
      ["nameless parameter", "Action=DescribeRegions&Version=2016-11-15&=x", "InvalidParameterValue"],
    ];
    for (const [what, body, code] of cases) {
      const answer = await post(body);
      expect({ what, status: answer.status, code: errorCode(answer) }, answer.body).toEqual({ what, status: 400, code });
    }
    expect(await keyPairs()).toEqual(["presigned", "signed"]);
    // A body past the limit is refused before it is read.
    const huge = await post(form({ Action: "CreateKeyPair", KeyName: "k".repeat(3 * 1024 * 1024) }));
    expectError(huge, 400, "InvalidRequest");
    // Only form bodies.
    const json = JSON.stringify({ Action: "DescribeRegions" });
    const jsonHeaders = await signedHeaders(stack.queryEndpoint, stack.key, json);
    expectError(await sendRaw(stack.queryEndpoint, { headers: { ...jsonHeaders, "content-type": "application/json" }, body: json }), 400, "InvalidRequest");
    // The process is still serving.
    expect((await post(form({ Action: "DescribeRegions" }))).status).toBe(200);
    expect(stack.api.child?.exitCode).toBeNull();
  });

  it("names an action EC2 has and Cirrus does not as Unsupported", async () => {
    const answer = await post(form({ Action: "DescribeSpotPriceHistory" }));
    expectError(answer, 400, "Unsupported");
    expect(answer.body).toContain("The action DescribeSpotPriceHistory is not supported by Cirrus yet.");
  });

  it("answers STS GetCallerIdentity at the same endpoint with the signer's account", async () => {
    const body = "Action=GetCallerIdentity&Version=2011-06-15";
    const answer = await sendRaw(stack.queryEndpoint, { headers: await signedHeaders(stack.queryEndpoint, stack.key, body, { service: "sts" }), body });
    expect(answer.status).toBe(200);
    expect(answer.body).toContain(`<Account>${stack.defaultAccountId}</Account>`);
    // An EC2 action signed for STS is not an STS action.
    const wrong = form({ Action: "DescribeRegions" });
    expectError(await sendRaw(stack.queryEndpoint, { headers: await signedHeaders(stack.queryEndpoint, stack.key, wrong, { service: "sts" }), body: wrong }), 400, "InvalidAction");
  });
});
