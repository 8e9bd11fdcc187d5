// Key pairs against the real API, checked with the real tools: the private
// keys Cirrus returns load in ssh-keygen and reproduce the stored public key,
// and every fingerprint is the one EC2's documentation tells users to compute
// with openssl / ssh-keygen ("Verify the fingerprint of your key pair").
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, Stack } from "../src/stack.js";

const stack = new Stack();
const dir = mkdtempSync(join(tmpdir(), "cirrus-keys-"));
const name = (n: string) => `${n}-${stack.runId}`;
/** Every private key the API returned, to check none reached its log. */
const privateKeys: string[] = [];

beforeAll(() => stack.start(0));
afterAll(async () => {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a tool (argv, no shell) and returns its stdout; `input` is piped to stdin. */
function tool(cmd: string, args: string[], input?: Buffer | string): Buffer {
  return execFileSync(cmd, args, { input, stdio: ["pipe", "pipe", "pipe"] });
}

/** Writes a private key file as ssh wants it (mode 0600). */
function keyFile(file: string, material: string): string {
  const path = join(dir, file);
  writeFileSync(path, material, { mode: 0o600 });
  privateKeys.push(material);
  return path;
}

/** `… | openssl <digest> -c` → the colon-separated hex digest. */
function opensslDigest(digest: "sha1" | "md5", data: Buffer): string {
  const out = tool("openssl", [digest, "-c"], data).toString().trim();
  return out.slice(out.lastIndexOf(" ") + 1);
}

/** `ssh-keygen -l -E sha256 -f file` → the base64 digest with EC2's `=` padding. */
function sshSha256(path: string): string {
  const [, fp] = tool("ssh-keygen", ["-l", "-E", "sha256", "-f", path]).toString().split(" ");
  expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  return `${fp!.slice("SHA256:".length)}=`;
}

/** The first two fields (type, base64) of an OpenSSH public key line. */
const keyOf = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ");

async function describeOne(keyName: string, includePublicKey = true) {
  const res = await stack.call("describeKeyPairs", { KeyNames: [keyName], IncludePublicKey: includePublicKey });
  expect(res.KeyPairs).toHaveLength(1);
  return res.KeyPairs[0];
}

async function counts(): Promise<{ keyPairs: number; tags: number }> {
  const n = async (table: string) => Number((await stack.pool.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
  return { keyPairs: await n("key_pairs"), tags: await n("tags") };
}

/** The EC2 error code of a failed call (fails the test if the call succeeds). */
async function errorOf(method: string, request: unknown): Promise<{ code: string; message: string }> {
  const err = await stack.call(method as never, request).then(
    () => undefined,
    (e: { details?: string; metadata?: { get(k: string): unknown[] } }) => e,
  );
  expect(err, `${method} must fail`).toBeDefined();
  const code = String(err!.metadata!.get("x-ec2-error-code")[0]);
  expect(err!.details!.startsWith(`${code}: `)).toBe(true);
  return { code, message: err!.details!.slice(code.length + 2) };
}

describe("CreateKeyPair", () => {
  it("rsa: a PKCS#1 PEM key (2048 bits) that reproduces the stored public key; fingerprint = SHA-1 of the PKCS#8 DER", async () => {
    const keyName = name("rsa");
    const res = await stack.call("createKeyPair", {
      KeyName: keyName,
      TagSpecifications: [{ ResourceType: "key-pair", Tags: [{ Key: "Name", Value: "created-rsa" }] }],
    });
    expect(res.KeyPairId).toMatch(/^key-[0-9a-f]{17}$/);
    expect(res.KeyName).toBe(keyName);
    expect(res.Tags).toEqual([{ Key: "Name", Value: "created-rsa" }]);
    expect(res.KeyMaterial).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END RSA PRIVATE KEY-----$/);
    const pem = keyFile("rsa.pem", res.KeyMaterial);

    const derived = tool("ssh-keygen", ["-y", "-f", pem]).toString();
    const info = await describeOne(keyName);
    expect(info).toMatchObject({ KeyPairId: res.KeyPairId, KeyName: keyName, KeyType: "rsa", KeyFingerprint: res.KeyFingerprint });
    expect(info.PublicKey).toBe(`${keyOf(derived)} ${keyName}`);
    expect(tool("ssh-keygen", ["-l", "-f", pem]).toString()).toMatch(/^2048 /);
    expect(new Date(info.CreateTime).getTime()).toBeGreaterThan(Date.now() - 60_000);

    // EC2: openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c
    const pkcs8 = tool("openssl", ["pkcs8", "-in", pem, "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt"]);
    expect(res.KeyFingerprint).toBe(opensslDigest("sha1", pkcs8));
    expect(res.KeyFingerprint).toMatch(/^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);
  });

  it("ed25519: an OpenSSH private key that ssh-keygen loads; fingerprint = base64 SHA-256 with padding", async () => {
    const keyName = name("ed");
    const res = await stack.call("createKeyPair", { KeyName: keyName, KeyType: "ed25519" });
    expect(res.KeyMaterial).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END OPENSSH PRIVATE KEY-----\n$/);
    const path = keyFile("ed.pem", res.KeyMaterial);
    const derived = tool("ssh-keygen", ["-y", "-f", path]).toString().trim();
    const info = await describeOne(keyName);
    expect(info.KeyType).toBe("ed25519");
    // The private key carries the key name as its comment, so ssh-keygen -y prints exactly the stored line.
    expect(info.PublicKey).toBe(derived);
    expect(derived).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} /);
    expect(res.KeyFingerprint).toBe(sshSha256(path));
    expect(res.KeyFingerprint).toHaveLength(44);
  });
});

describe("ImportKeyPair", () => {
  it("ed25519 from ssh-keygen: fingerprint as ssh-keygen -l -E sha256 computes it", async () => {
    const path = join(dir, "imported_ed");
    tool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", path]);
    const keyName = name("imp-ed");
    const res = await stack.call("importKeyPair", { KeyName: keyName, PublicKeyMaterial: readFileSync(`${path}.pub`) });
    expect(res).toMatchObject({ KeyName: keyName, KeyPairId: expect.stringMatching(/^key-[0-9a-f]{17}$/), KeyFingerprint: sshSha256(`${path}.pub`) });
    const info = await describeOne(keyName);
    expect(info).toMatchObject({ KeyType: "ed25519", KeyFingerprint: res.KeyFingerprint, PublicKey: `${keyOf(readFileSync(`${path}.pub`, "utf8"))} ${keyName}` });
  });

  it("rsa from ssh-keygen (OpenSSH and RFC 4716 forms): fingerprint = MD5 of the public key DER", async () => {
    const path = join(dir, "imported_rsa");
    tool("ssh-keygen", ["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", path]);
    // EC2, for keys from OpenSSH 7.8 or later: ssh-keygen -ef key -m PEM | openssl rsa -RSAPublicKey_in -outform DER | openssl md5 -c
    const der = tool("openssl", ["rsa", "-RSAPublicKey_in", "-outform", "DER"], tool("ssh-keygen", ["-e", "-f", path, "-m", "PEM"]));
    const expected = opensslDigest("md5", der);
    expect(expected).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);

    const openssh = await stack.call("importKeyPair", { KeyName: name("imp-rsa"), PublicKeyMaterial: readFileSync(`${path}.pub`) });
    expect(openssh.KeyFingerprint).toBe(expected);
    const rfc4716 = tool("ssh-keygen", ["-e", "-f", `${path}.pub`]);
    expect(rfc4716.toString()).toMatch(/^---- BEGIN SSH2 PUBLIC KEY ----/);
    const ssh2 = await stack.call("importKeyPair", { KeyName: name("imp-rsa-ssh2"), PublicKeyMaterial: rfc4716 });
    expect(ssh2.KeyFingerprint).toBe(expected);
    // EC2's third format: base64 of the DER public key.
    const der64 = tool("ssh-keygen", ["-e", "-m", "PKCS8", "-f", `${path}.pub`]).toString().split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    const derImport = await stack.call("importKeyPair", { KeyName: name("imp-rsa-der"), PublicKeyMaterial: Buffer.from(der64) });
    expect(derImport.KeyFingerprint).toBe(expected);
    await stack.call("deleteKeyPair", { KeyName: name("imp-rsa-der") });
    const [a, b] = [await describeOne(name("imp-rsa")), await describeOne(name("imp-rsa-ssh2"))];
    expect(keyOf(a.PublicKey)).toBe(keyOf(readFileSync(`${path}.pub`, "utf8")));
    expect(keyOf(b.PublicKey)).toBe(keyOf(a.PublicKey));
  });

  it("re-importing a created RSA key gives the imported (MD5) fingerprint, as in EC2", async () => {
    const pem = join(dir, "rsa.pem");
    const publicLine = tool("ssh-keygen", ["-y", "-f", pem]);
    const res = await stack.call("importKeyPair", { KeyName: name("reimported"), PublicKeyMaterial: publicLine });
    // EC2: openssl rsa -in key.pem -pubout -outform DER | openssl md5 -c
    expect(res.KeyFingerprint).toBe(opensslDigest("md5", tool("openssl", ["rsa", "-in", pem, "-pubout", "-outform", "DER"])));
    expect(res.KeyFingerprint).not.toBe((await describeOne(name("rsa"))).KeyFingerprint);
  });
});

describe("DescribeKeyPairs", () => {
  it("filters by name, id, type, fingerprint and tags; omits the public key unless asked", async () => {
    const rsa = await describeOne(name("rsa"), false);
    expect(rsa.PublicKey).toBe("");
    const find = async (Filters: unknown) => (await stack.call("describeKeyPairs", { Filters })).KeyPairs.map((k: { KeyName: string }) => k.KeyName);
    expect(await find([{ Name: "key-type", Values: ["ed25519"] }])).toEqual([name("ed"), name("imp-ed")].sort());
    expect(await find([{ Name: "key-name", Values: [`imp-?sa-${stack.runId}`] }])).toEqual([name("imp-rsa")]);
    expect(await find([{ Name: "key-name", Values: [`imp-rsa*`] }])).toEqual([name("imp-rsa"), name("imp-rsa-ssh2")]);
    expect(await find([{ Name: "fingerprint", Values: [rsa.KeyFingerprint] }])).toEqual([name("rsa")]);
    expect(await find([{ Name: "key-pair-id", Values: [rsa.KeyPairId] }])).toEqual([name("rsa")]);
    expect(await find([{ Name: "tag:Name", Values: ["created-*"] }])).toEqual([name("rsa")]);
    expect(await find([{ Name: "tag-key", Values: ["Name"] }, { Name: "key-type", Values: ["rsa"] }])).toEqual([name("rsa")]);
    const byId = await stack.call("describeKeyPairs", { KeyPairIds: [rsa.KeyPairId] });
    expect(byId.KeyPairs.map((k: { KeyName: string }) => k.KeyName)).toEqual([name("rsa")]);
    expect((await stack.call("describeKeyPairs", {})).KeyPairs).toHaveLength(6);
  });

  it("names and ids that do not exist are InvalidKeyPair.NotFound, with EC2's message", async () => {
    expect(await errorOf("describeKeyPairs", { KeyNames: [name("rsa"), "nope"] })).toEqual({ code: "InvalidKeyPair.NotFound", message: "The key pair 'nope' does not exist" });
    expect(await errorOf("describeKeyPairs", { KeyPairIds: ["key-0123456789abcdef0"] })).toEqual({
      code: "InvalidKeyPair.NotFound",
      message: "The key pair ID 'key-0123456789abcdef0' does not exist",
    });
    expect((await errorOf("describeKeyPairs", { KeyPairIds: ["key-$(reboot)"] })).code).toBe("InvalidKeyPair.NotFound");
    expect((await errorOf("describeKeyPairs", { Filters: [{ Name: "bogus", Values: ["x"] }] })).code).toBe("InvalidParameterValue");
  });
});

/** An OpenSSH line for an RSA key of `bits` (ssh-keygen refuses to make small ones). */
function rsaLine(bits: number): string {
  const jwk = generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ format: "jwk" });
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, (b.length >> 8) & 0xff, b.length & 0xff]), b]);
  const mpint = (b64: string) => {
    const b = Buffer.from(b64, "base64url");
    return str(b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
  };
  return `ssh-rsa ${Buffer.concat([str(Buffer.from("ssh-rsa")), mpint(jwk.e!), mpint(jwk.n!)]).toString("base64")} small`;
}

describe("bad input gets EC2's error and writes nothing", () => {
  const edPub = () => readFileSync(join(dir, "imported_ed.pub"));
  const ecdsaPub = () => {
    const path = join(dir, "ecdsa");
    tool("ssh-keygen", ["-q", "-t", "ecdsa", "-N", "", "-f", path]);
    return readFileSync(`${path}.pub`);
  };
  const cases: Array<[string, string, () => unknown, string]> = [
    ["duplicate name (create)", "createKeyPair", () => ({ KeyName: name("rsa") }), "InvalidKeyPair.Duplicate"],
    ["duplicate name (import)", "importKeyPair", () => ({ KeyName: name("ed"), PublicKeyMaterial: edPub() }), "InvalidKeyPair.Duplicate"],
    ["no name", "createKeyPair", () => ({}), "MissingParameter"],
    ["name of 256 characters", "createKeyPair", () => ({ KeyName: "k".repeat(256) }), "InvalidParameterValue"],
    ["non-ASCII name", "createKeyPair", () => ({ KeyName: "clé" }), "InvalidParameterValue"],
    ["name with a newline", "importKeyPair", () => ({ KeyName: "a\nssh-rsa AAAA", PublicKeyMaterial: edPub() }), "InvalidParameterValue"],
    ["unknown key type", "createKeyPair", () => ({ KeyName: name("x"), KeyType: "dsa" }), "InvalidParameterValue"],
    ["ppk format", "createKeyPair", () => ({ KeyName: name("x"), KeyFormat: "ppk" }), "Unsupported"],
    ["unknown key format", "createKeyPair", () => ({ KeyName: name("x"), KeyFormat: "der" }), "InvalidParameterValue"],
    ["tags for another resource type", "createKeyPair", () => ({ KeyName: name("x"), TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "a", Value: "b" }] }] }), "InvalidParameterValue"],
    ["no material", "importKeyPair", () => ({ KeyName: name("x") }), "MissingParameter"],
    ["garbage material", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: Buffer.from("hello world") }), "InvalidKey.Format"],
    ["binary material", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: Buffer.from([0, 1, 2, 255]) }), "InvalidKey.Format"],
    ["an ecdsa key", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: ecdsaPub() }), "InvalidKey.Format"],
    ["a 768-bit rsa key", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: Buffer.from(rsaLine(768)) }), "InvalidKey.Format"],
    ["a truncated key", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: Buffer.from(edPub().toString().slice(0, 60)) }), "InvalidKey.Format"],
    ["type and data disagree", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: Buffer.from(edPub().toString().replace("ssh-ed25519", "ssh-rsa")) }), "InvalidKey.Format"],
    ["a private key", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: readFileSync(join(dir, "ed.pem")) }), "InvalidKey.Format"],
    ["two keys", "importKeyPair", () => ({ KeyName: name("x"), PublicKeyMaterial: Buffer.concat([edPub(), edPub()]) }), "InvalidKey.Format"],
  ];

  it.each(cases)("%s", async (_what, method, request, code) => {
    const before = await counts();
    expect((await errorOf(method, request())).code).toBe(code);
    expect(await counts()).toEqual(before);
    expect(stack.api.alive).toBe(true);
  });

  it("the duplicate keeps the original key", async () => {
    const before = await describeOne(name("ed"));
    await errorOf("importKeyPair", { KeyName: name("ed"), PublicKeyMaterial: edPub() });
    expect(await describeOne(name("ed"))).toEqual(before);
  });
});

describe("DeleteKeyPair", () => {
  it("by name returns the id and removes the key and its tags; deleting a missing name succeeds", async () => {
    const keyName = name("rsa");
    const { KeyPairId } = await describeOne(keyName);
    expect(await stack.call("deleteKeyPair", { KeyName: keyName })).toEqual({ Return: true, KeyPairId });
    expect((await errorOf("describeKeyPairs", { KeyNames: [keyName] })).code).toBe("InvalidKeyPair.NotFound");
    expect((await stack.pool.query("SELECT count(*) FROM tags WHERE resource_id = $1", [KeyPairId])).rows[0].count).toBe("0");
    expect(await stack.call("deleteKeyPair", { KeyName: keyName })).toEqual({ Return: true, KeyPairId: "" });
    // The name is free again.
    await stack.call("createKeyPair", { KeyName: keyName });
  });

  it("by id; an id that does not exist is InvalidKeyPair.NotFound", async () => {
    const { KeyPairId } = await describeOne(name("imp-rsa-ssh2"));
    expect(await stack.call("deleteKeyPair", { KeyPairId })).toEqual({ Return: true, KeyPairId });
    expect(await errorOf("deleteKeyPair", { KeyPairId })).toEqual({ code: "InvalidKeyPair.NotFound", message: `The key pair ID '${KeyPairId}' does not exist` });
    expect((await errorOf("deleteKeyPair", {})).code).toBe("MissingParameter");
    expect((await errorOf("deleteKeyPair", { KeyName: "a", KeyPairId })).code).toBe("InvalidParameterCombination");
  });
});

describe("the cirrus CLI", () => {
  const bin = join(repoRoot, "services/cli/bin/cirrus.js");
  const env = () => stack.cliEnv();
  const cirrus = (...args: string[]) => execFileSync(process.execPath, [bin, ...args], { env: env() }).toString();

  /** `cirrus <args> > file`: stdout straight into a file, as a shell redirect does. */
  function cirrusTo(file: string, ...args: string[]): string {
    const path = join(dir, file);
    const fd = openSync(path, "w", 0o600);
    try {
      const r = spawnSync(process.execPath, [bin, ...args], { env: env(), stdio: ["ignore", fd, "pipe"] });
      expect(r.status, r.stderr.toString()).toBe(0);
    } finally {
      closeSync(fd);
    }
    return path;
  }

  it.each(["rsa", "ed25519"])("create-key-pair --key-type %s --query KeyMaterial --output text > k.pem gives a key ssh accepts", async (keyType) => {
    const keyName = name(`cli-${keyType}`);
    const pem = cirrusTo(`cli-${keyType}.pem`, "create-key-pair", "--key-name", keyName, "--key-type", keyType, "--query", "KeyMaterial", "--output", "text");
    expect(readFileSync(pem, "utf8")).toMatch(/^-----BEGIN (RSA|OPENSSH) PRIVATE KEY-----\n/);
    const derived = tool("ssh-keygen", ["-y", "-f", pem]).toString();
    const stored = cirrus("describe-key-pairs", "--key-names", keyName, "--include-public-key", "--query", "KeyPairs[0].PublicKey", "--output", "text");
    expect(keyOf(stored)).toBe(keyOf(derived));
  });

  it("import-key-pair fileb://, describe-key-pairs in EC2's JSON, delete-key-pair", async () => {
    const keyName = name("cli-imported");
    const imported = JSON.parse(cirrus("import-key-pair", "--key-name", keyName, "--public-key-material", `fileb://${join(dir, "imported_ed.pub")}`));
    expect(imported).toEqual({ KeyFingerprint: sshSha256(join(dir, "imported_ed.pub")), KeyName: keyName, KeyPairId: expect.stringMatching(/^key-[0-9a-f]{17}$/) });
    const described = JSON.parse(cirrus("describe-key-pairs", "--key-pair-ids", imported.KeyPairId));
    expect(described).toEqual({
      KeyPairs: [{ KeyPairId: imported.KeyPairId, KeyFingerprint: imported.KeyFingerprint, KeyName: keyName, KeyType: "ed25519", CreateTime: expect.any(String) }],
    });
    expect(cirrus("describe-key-pairs", "--output", "table")).toContain(keyName);
    expect(JSON.parse(cirrus("delete-key-pair", "--key-name", keyName))).toEqual({ Return: true, KeyPairId: imported.KeyPairId });
  });
});

describe("secrecy", () => {
  it("no private key reaches the API's log", () => {
    const log = readFileSync(join(stack.logDir, "api.log"), "utf8");
    expect(log).toMatch(/key pair created/);
    expect(log).not.toContain("PRIVATE KEY");
    expect(privateKeys.length).toBeGreaterThanOrEqual(2);
    for (const key of privateKeys) expect(log).not.toContain(key.split("\n")[2]);
  });
});
