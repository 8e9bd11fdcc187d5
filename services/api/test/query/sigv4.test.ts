// SigV4 verification against real clients: requests are signed by
// @smithy/signature-v4 (what the JavaScript SDK signs with), or by the
// @aws-sdk/client-ec2 and client-sts pipelines themselves, and sent over
// loopback HTTP, so what is verified is what a Node HTTP server receives.
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { Ec2Error } from "@cirrus/core";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { verifySignature, type SignedRequest, type SigningKey, type VerifyOptions } from "../../src/query/sigv4.js";

const KEY: SigningKey = { accessKeyId: "AKIACIRRUSEXAMPLE001", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", accountId: "123456789012", enabled: true };
const DISABLED: SigningKey = { accessKeyId: "AKIACIRRUSEXAMPLE002", secretAccessKey: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", accountId: "123456789012", enabled: false };
const KEYS = new Map([KEY, DISABLED].map((key) => [key.accessKeyId, key]));
const NOW = new Date("2026-12-01T12:00:00Z");
const MINUTE = 60_000;
const NOT_VALIDATED = "AWS was not able to validate the provided access credentials";
const FORM = "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0";

const options = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({
  region: "us-east-1",
  services: ["ec2", "sts"],
  now: NOW,
  lookup: async (id) => KEYS.get(id),
  ...over,
});
const verify = (req: SignedRequest, over?: Partial<VerifyOptions>) => verifySignature(req, options(over));

/** Rejects with `code`, never showing the secret; resolves to the message. */
async function refused(req: SignedRequest, code: string, over?: Partial<VerifyOptions>): Promise<string> {
  const err = await verify(req, over).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Ec2Error);
  expect((err as Ec2Error).code).toBe(code);
  expect((err as Ec2Error).message).not.toContain(KEY.secretAccessKey);
  return (err as Ec2Error).message;
}

// The capture server does what the Query server must: split the raw URL at
// "?", take the Host header as sent and Node's headers, read the raw body.
let server: Server;
let host: string;
let lastSeen: SignedRequest | undefined;

function received(req: IncomingMessage, body: Buffer): SignedRequest {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return { method: req.method ?? "", host: req.headers.host ?? "", path: q < 0 ? url : url.slice(0, q), rawQuery: q < 0 ? "" : url.slice(q + 1), headers: req.headers, body };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      lastSeen = received(req, Buffer.concat(chunks));
      res.writeHead(400, { "content-type": "text/xml;charset=UTF-8" });
      res.end("<Response><Errors><Error><Code>Captured</Code><Message>captured</Message></Error></Errors><RequestID>test</RequestID></Response>");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function seen(): SignedRequest {
  if (!lastSeen) throw new Error("no request reached the capture server");
  const req = lastSeen;
  lastSeen = undefined;
  return req;
}

/** A request as smithy's signer returns it. */
interface Outgoing {
  method: string;
  path: string;
  query: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: string;
}

// RFC 3986, written independently of the signer's own encoder.
const rfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const encodeQuery = (query: Outgoing["query"]) =>
  Object.entries(query)
    .flatMap(([name, value]) => (Array.isArray(value) ? value : [value ?? ""]).map((v) => `${rfc3986(name)}=${rfc3986(v)}`))
    .join("&");

async function send(out: Outgoing): Promise<SignedRequest> {
  const qs = encodeQuery(out.query);
  await new Promise<void>((resolve, reject) => {
    const [hostname, port] = host.split(":");
    const req = request({ host: hostname, port: Number(port), method: out.method, path: out.path + (qs ? `?${qs}` : ""), headers: out.headers }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", reject);
    req.end(out.body);
  });
  return seen();
}

interface SignAs {
  key?: Pick<SigningKey, "accessKeyId" | "secretAccessKey"> & { sessionToken?: string };
  region?: string;
  service?: string;
  date?: Date;
  signableHeaders?: Set<string>;
}

const signer = ({ key = KEY, region = "us-east-1", service = "ec2" }: SignAs) =>
  new SignatureV4({
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey, sessionToken: key.sessionToken },
    region,
    service,
    sha256: Hash.bind(null, "sha256"),
    applyChecksum: false,
  });

async function signAndSend(req: HttpRequest, as: SignAs = {}): Promise<SignedRequest> {
  return send((await signer(as).sign(req, { signingDate: as.date ?? NOW, signableHeaders: as.signableHeaders })) as Outgoing);
}

async function presignAndSend(req: HttpRequest, expiresIn: number, as: SignAs = {}): Promise<SignedRequest> {
  return send((await signer(as).presign(req, { signingDate: as.date ?? NOW, expiresIn })) as Outgoing);
}

// What botocore (the aws CLI) sends for EC2: a form body, content-type, host and x-amz-date signed, no content hash.
const formPost = (headers: Record<string, string> = {}) =>
  new HttpRequest({ method: "POST", path: "/", headers: { host, "content-type": "application/x-www-form-urlencoded; charset=utf-8", ...headers }, body: FORM });

const TRICKY_QUERY = {
  Action: "DescribeInstances",
  Version: "2016-11-15",
  "Filter.1.Name": "tag:Name",
  "Filter.1.Value.1": "a+b c%20~*/é😀",
  "Filter.1.Value.2": "",
  "Tag.Key": ["zeta", "alpha"],
};
const queryGet = (headers: Record<string, string> = {}) => new HttpRequest({ method: "GET", path: "/", query: TRICKY_QUERY, headers: { host, ...headers } });
const presignable = (headers: Record<string, string> = {}) =>
  new HttpRequest({ method: "GET", path: "/", query: { Action: "DescribeInstances", Version: "2016-11-15" }, headers: { host, ...headers } });

async function viaEc2Client(): Promise<SignedRequest> {
  const ec2 = new EC2Client({ region: "us-east-1", endpoint: `http://${host}`, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey }, maxAttempts: 1 });
  await ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })).catch(() => undefined);
  ec2.destroy();
  return seen();
}

const withHeaders = (req: SignedRequest, headers: Record<string, string | undefined>): SignedRequest => ({ ...req, headers: { ...req.headers, ...headers } });
const authorization = (req: SignedRequest) => String(req.headers.authorization);

describe("verifySignature accepts", () => {
  it("a POST form signed by @aws-sdk/client-ec2 (amz-sdk-*, content-length and x-amz-content-sha256 signed)", async () => {
    const req = await viaEc2Client();
    expect(req.body.toString()).toBe(FORM);
    expect(authorization(req)).toMatch(/SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-content-sha256;x-amz-date;/);
    await expect(verify(req, { now: new Date() })).resolves.toEqual({ accessKeyId: KEY.accessKeyId, accountId: KEY.accountId, service: "ec2" });
  });

  it("STS GetCallerIdentity signed by @aws-sdk/client-sts at the same endpoint, as service sts", async () => {
    const sts = new STSClient({ region: "us-east-1", endpoint: `http://${host}`, credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey }, maxAttempts: 1 });
    await sts.send(new GetCallerIdentityCommand({})).catch(() => undefined);
    sts.destroy();
    const req = seen();
    expect(req.body.toString()).toBe("Action=GetCallerIdentity&Version=2011-06-15");
    expect((await verify(req, { now: new Date() })).service).toBe("sts");
  });

  it("a botocore-style POST: content-type;host;x-amz-date signed, no content hash, host with its port", async () => {
    const req = await signAndSend(formPost());
    expect(authorization(req)).toContain("SignedHeaders=content-type;host;x-amz-date,");
    expect(req.host).toBe(host);
    await expect(verify(req)).resolves.toMatchObject({ accessKeyId: KEY.accessKeyId, service: "ec2" });
  });

  it("a GET whose query holds +, a space, %20, ~, *, /, unicode, an empty value and a repeated key", async () => {
    const req = await signAndSend(queryGet());
    expect(req.rawQuery).toContain("a%2Bb%20c%2520~%2A%2F%C3%A9%F0%9F%98%80");
    expect(req.rawQuery).toContain("Tag.Key=zeta&Tag.Key=alpha");
    await expect(verify(req)).resolves.toMatchObject({ service: "ec2" });
  });

  it("a query encoded otherwise than the canonical form (lower-case hex, an encoded unreserved character)", async () => {
    const req = await signAndSend(queryGet());
    await expect(verify({ ...req, rawQuery: req.rawQuery.replace("%3A", "%3a").replace("~", "%7E") })).resolves.toMatchObject({ service: "ec2" });
  });

  it("a presigned URL (SignatureV4.presign) until X-Amz-Expires", async () => {
    const req = await presignAndSend(presignable(), 300);
    expect(req.rawQuery).toMatch(/X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{64}$/);
    expect(req.headers.authorization).toBeUndefined();
    await expect(verify(req, { now: new Date(NOW.getTime() + 300_000) })).resolves.toMatchObject({ accessKeyId: KEY.accessKeyId });
  });

  it("a presigned URL whose payload is UNSIGNED-PAYLOAD (hoisted to the query by the presigner), with no body", async () => {
    const req = await presignAndSend(presignable({ "x-amz-content-sha256": "UNSIGNED-PAYLOAD" }), 300);
    expect(req.rawQuery).toContain("x-amz-content-sha256=UNSIGNED-PAYLOAD");
    await expect(verify(req)).resolves.toMatchObject({ accessKeyId: KEY.accessKeyId });
  });

  it("a changed user-agent, which is not signed", async () => {
    const req = await signAndSend(formPost({ "user-agent": "aws-cli/2.17.0" }));
    expect(authorization(req)).not.toContain("user-agent");
    await expect(verify(withHeaders(req, { "user-agent": "something-else/1.0" }))).resolves.toMatchObject({ service: "ec2" });
  });

  it.each([-14, 14])("X-Amz-Date %i minutes off", async (minutes) => {
    const req = await signAndSend(formPost(), { date: new Date(NOW.getTime() + minutes * MINUTE) });
    await expect(verify(req)).resolves.toMatchObject({ service: "ec2" });
  });
});

describe("verifySignature refuses", () => {
  it("a tampered body under the SDK's x-amz-content-sha256", async () => {
    const req = await viaEc2Client();
    expect(await refused({ ...req, body: Buffer.from(FORM.replace("i-0123456789abcdef0", "i-0fedcba9876543210")) }, "AuthFailure", { now: new Date() })).toBe(NOT_VALIDATED);
  });

  it("a tampered body without a content hash header", async () => {
    const req = await signAndSend(formPost());
    expect(await refused({ ...req, body: Buffer.from(`${FORM}&DryRun=true`) }, "AuthFailure")).toBe(NOT_VALIDATED);
  });

  it("a tampered signed header", async () => {
    const req = await viaEc2Client();
    expect(await refused(withHeaders(req, { "amz-sdk-invocation-id": "00000000-0000-4000-8000-000000000000" }), "AuthFailure", { now: new Date() })).toBe(NOT_VALIDATED);
  });

  it("a tampered query", async () => {
    const req = await signAndSend(queryGet());
    expect(await refused({ ...req, rawQuery: req.rawQuery.replace("tag%3AName", "tag%3AOwner") }, "AuthFailure")).toBe(NOT_VALIDATED);
  });

  it("a dropped repeated query parameter", async () => {
    const req = await signAndSend(queryGet());
    expect(await refused({ ...req, rawQuery: req.rawQuery.replace("&Tag.Key=alpha", "") }, "AuthFailure")).toBe(NOT_VALIDATED);
  });

  it("a changed user-agent that the client signed", async () => {
    const req = await signAndSend(formPost({ "user-agent": "aws-cli/2.17.0" }), { signableHeaders: new Set(["user-agent"]) });
    expect(authorization(req)).toContain("user-agent");
    await expect(verify(req)).resolves.toMatchObject({ service: "ec2" });
    await refused(withHeaders(req, { "user-agent": "something-else/1.0" }), "AuthFailure");
  });

  it("a wrong secret, an unknown key and a disabled key, alike", async () => {
    const wrongSecret = await signAndSend(formPost(), { key: { ...KEY, secretAccessKey: "not-the-secret" } });
    const unknown = await signAndSend(formPost(), { key: { accessKeyId: "AKIACIRRUSUNKNOWN000", secretAccessKey: "whatever" } });
    const disabled = await signAndSend(formPost(), { key: DISABLED });
    for (const req of [wrongSecret, unknown, disabled]) expect(await refused(req, "AuthFailure")).toBe(NOT_VALIDATED);
  });

  it.each([-16, 16])("X-Amz-Date %i minutes off, without looking the key up", async (minutes) => {
    const req = await signAndSend(formPost(), { date: new Date(NOW.getTime() + minutes * MINUTE) });
    const lookup = vi.fn(async (id: string) => KEYS.get(id));
    expect(await refused(req, "RequestExpired", { lookup })).toBe("Request has expired.");
    expect(lookup).not.toHaveBeenCalled();
  });

  it("a presigned URL past X-Amz-Expires, or dated in the future beyond the skew", async () => {
    const req = await presignAndSend(presignable(), 300);
    expect(await refused(req, "RequestExpired", { now: new Date(NOW.getTime() + 301_000) })).toBe("Request has expired.");
    await refused(req, "RequestExpired", { now: new Date(NOW.getTime() - 16 * MINUTE) });
  });

  it.each(["0", "604801", "5m"])("a presigned URL with X-Amz-Expires=%s", async (expires) => {
    const req = await presignAndSend(presignable(), 300);
    expect(await refused({ ...req, rawQuery: req.rawQuery.replace("X-Amz-Expires=300", `X-Amz-Expires=${expires}`) }, "IncompleteSignature")).toMatch(/X-Amz-Expires/);
  });

  it("a presigned URL missing a parameter, or holding one twice", async () => {
    const req = await presignAndSend(presignable(), 300);
    expect(await refused({ ...req, rawQuery: req.rawQuery.replace(/&X-Amz-SignedHeaders=host/, "") }, "IncompleteSignature")).toMatch(/missing: X-Amz-SignedHeaders\.$/);
    expect(await refused({ ...req, rawQuery: `${req.rawQuery}&X-Amz-Date=20261201T120000Z` }, "IncompleteSignature")).toContain("X-Amz-Date");
  });

  it("a credential scoped to another region, service, date or terminator", async () => {
    expect(await refused(await signAndSend(formPost(), { region: "us-west-2" }), "AuthFailure")).toBe("Credential should be scoped to a valid region, not 'us-west-2'.");
    expect(await refused(await signAndSend(formPost(), { service: "iam" }), "AuthFailure")).toBe("Credential should be scoped to correct service: 'ec2' or 'sts', not 'iam'.");
    const req = await signAndSend(formPost());
    expect(await refused(withHeaders(req, { authorization: authorization(req).replace("/20261201/", "/20261130/") }), "AuthFailure")).toBe(
      "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20261130' != '20261201', from '20261201T120000Z'.",
    );
    expect(await refused(withHeaders(req, { authorization: authorization(req).replace("/aws4_request", "/aws5_request") }), "AuthFailure")).toMatch(/valid terminator/);
  });

  it("a request with no signature at all, as EC2 does", async () => {
    const req = await signAndSend(formPost());
    expect(await refused(withHeaders(req, { authorization: undefined }), "MissingParameter")).toBe("The request must contain the parameter AWSAccessKeyId");
  });

  describe("a malformed Authorization header", () => {
    const credential = `Credential=${KEY.accessKeyId}/20261201/us-east-1/ec2/aws4_request`;
    const signature = `Signature=${"0".repeat(64)}`;
    it.each([
      ["", /algorithm/],
      ["Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", /algorithm/],
      ["AWS AKIACIRRUSEXAMPLE001:c2lnbmF0dXJl", /algorithm/],
      ["AWS4-HMAC-SHA256", /requires 'Credential' parameter.*requires 'Signature' parameter.*requires 'SignedHeaders' parameter/],
      [`AWS4-HMAC-SHA256 ${credential}`, /requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.$/],
      [`AWS4-HMAC-SHA256 Credential ${KEY.accessKeyId}, SignedHeaders=host;x-amz-date, ${signature}`, /missing equal-sign/],
      [`AWS4-HMAC-SHA256 Credential=${KEY.accessKeyId}/20261201/us-east-1/ec2, SignedHeaders=host;x-amz-date, ${signature}`, /Credential .* is malformed/],
      [`AWS4-HMAC-SHA256 ${credential}, SignedHeaders=, ${signature}`, /SignedHeaders must be/],
      [`AWS4-HMAC-SHA256 ${credential}, SignedHeaders=Host;X-Amz-Date, ${signature}`, /SignedHeaders must be/],
      [`AWS4-HMAC-SHA256 ${credential}, SignedHeaders=content-type;x-amz-date, ${signature}`, /'host' header must be among the signed headers/],
      [`AWS4-HMAC-SHA256 ${credential}, SignedHeaders=content-type;host, ${signature}`, /'x-amz-date' header must be among the signed headers/],
    ])("%j", async (value, message) => {
      const req = await signAndSend(formPost());
      expect(await refused(withHeaders(req, { authorization: value }), "IncompleteSignature")).toMatch(message);
    });

    it("whose signature is not 64 hex digits: it does not match", async () => {
      const req = await signAndSend(formPost());
      expect(await refused(withHeaders(req, { authorization: authorization(req).replace(/Signature=.*$/, "Signature=zz") }), "AuthFailure")).toBe(NOT_VALIDATED);
    });
  });

  it.each(["2026-12-01T12:00:00Z", "20261301T120000Z", "20261231T246000Z"])("X-Amz-Date %s", async (date) => {
    const req = await signAndSend(formPost());
    expect(await refused(withHeaders(req, { "x-amz-date": date }), "IncompleteSignature")).toMatch(/ISO 8601 basic format/);
  });

  it("a session token, in the header or a presigned query: Cirrus has no STS sessions", async () => {
    const key = { ...KEY, sessionToken: "FwoGZXIvYXdzEXAMPLETOKEN" };
    const signed = await signAndSend(formPost(), { key });
    expect(signed.headers["x-amz-security-token"]).toBe(key.sessionToken);
    expect(await refused(signed, "AuthFailure")).toMatch(/no session credentials/);
    const presigned = await presignAndSend(presignable(), 300, { key });
    expect(presigned.rawQuery).toContain("X-Amz-Security-Token=");
    expect(await refused(presigned, "AuthFailure")).toMatch(/no session credentials/);
  });

  it("UNSIGNED-PAYLOAD for a request with a body, whose Query parameters would go unsigned", async () => {
    const req = await signAndSend(formPost({ "x-amz-content-sha256": "UNSIGNED-PAYLOAD" }));
    expect(await refused(req, "IncompleteSignature")).toMatch(/UNSIGNED-PAYLOAD/);
  });

  it("a query string that is not valid percent-encoding", async () => {
    const req = await signAndSend(queryGet());
    await refused({ ...req, rawQuery: `${req.rawQuery}&Bad=%E9` }, "InvalidParameterValue");
  });

  it("to hide a failing key store: the lookup's error passes through unchanged", async () => {
    const req = await signAndSend(formPost());
    const down = new Error("database unavailable");
    await expect(verify(req, { lookup: () => Promise.reject(down) })).rejects.toBe(down);
  });
});
