// Raw requests to the EC2 Query API, signed as the SDKs sign them
// (@smithy/signature-v4) but with every byte under the test's control: for
// tests of what the server refuses (tampering, expiry, bad encodings).
import { request } from "node:http";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AccessKey } from "@cirrus/common";

export interface QueryAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** Sends one HTTP request to `endpoint` (http://host:port) exactly as given. */
export function sendRaw(endpoint: string, opts: { method?: string; path?: string; headers: Record<string, string>; body?: Buffer | string }): Promise<QueryAnswer> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: opts.method ?? "POST", path: opts.path ?? "/", headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers["content-type"] ?? ""), body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const signer = (key: AccessKey, region: string, service: string) => new SignatureV4({ credentials: key, region, service, sha256: Hash.bind(null, "sha256"), applyChecksum: false });

/**
 * The headers signing a form POST of `body` to `endpoint` as botocore signs
 * it (content-type, host with port, x-amz-date), at `date`.
 */
export async function signedHeaders(endpoint: string, key: AccessKey, body: string | Buffer, opts: { date?: Date; region?: string; service?: string } = {}): Promise<Record<string, string>> {
  const url = new URL(endpoint);
  const signed = await signer(key, opts.region ?? "lab-1", opts.service ?? "ec2").sign({
    method: "POST", protocol: "http:", hostname: url.hostname, port: Number(url.port), path: "/", query: {},
    headers: { host: url.host, "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body,
  }, { signingDate: opts.date ?? new Date() });
  return signed.headers as Record<string, string>;
}

/** A form POST of `body`, signed with `key`. */
export async function signedPost(endpoint: string, key: AccessKey, body: string | Buffer, opts: { date?: Date } = {}): Promise<QueryAnswer> {
  return sendRaw(endpoint, { headers: await signedHeaders(endpoint, key, body, opts), body });
}

/** A presigned GET URL's path and query for `params`, valid `expiresIn` seconds from `date`. */
export async function presignedPath(endpoint: string, key: AccessKey, params: Record<string, string>, opts: { date?: Date; expiresIn: number }): Promise<string> {
  const url = new URL(endpoint);
  const presigned = await signer(key, "lab-1", "ec2").presign({
    method: "GET", protocol: "http:", hostname: url.hostname, port: Number(url.port), path: "/", query: params, headers: { host: url.host },
  }, { signingDate: opts.date ?? new Date(), expiresIn: opts.expiresIn });
  const query = Object.entries(presigned.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join("&");
  return `/?${query}`;
}

/** The EC2 error code of an error answer, or undefined for a success. */
export function errorCode(answer: QueryAnswer): string | undefined {
  return /<Response><Errors><Error><Code>([^<]*)<\/Code>/.exec(answer.body)?.[1];
}
