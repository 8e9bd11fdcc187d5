// AWS Signature Version 4 on the server, for the Query API (EC2, and STS's
// GetCallerIdentity at the same endpoint). A request is verified by signing
// it again with @smithy/signature-v4 (the SDK's own signer) and the secret
// of the claimed access key, then comparing signatures in constant time.
// Both forms are accepted: the Authorization header and the presigned query
// string (X-Amz-Algorithm, X-Amz-Credential, …, X-Amz-Signature).
import { createHash, timingSafeEqual } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { Ec2Error } from "@cirrus/core";

/** A request as it reached the HTTP server, before anything parsed it. */
export interface SignedRequest {
  method: string;
  /** The authority the client addressed (Host header, or HTTP/2 :authority), as sent: with its port. */
  host: string;
  /** The path as sent, still percent-encoded, without the query. */
  path: string;
  /** The query string as sent, without "?". */
  rawQuery: string;
  /** Node's IncomingMessage.headers: lower-case names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body's bytes, read before any form parsing. */
  body: Buffer;
}

/** The access key a signature claims, as the key store holds it (core's AccessKeyRecord is one). */
export interface SigningKey {
  accessKeyId: string;
  secretAccessKey: string;
  accountId: string;
  enabled: boolean;
}

export interface VerifyOptions<K extends SigningKey = SigningKey> {
  /** The only region a credential scope may name. */
  region: string;
  /** The services a credential scope may name, e.g. ["ec2", "sts"]. */
  services: readonly string[];
  now: Date;
  /** How far X-Amz-Date may be from `now`; 15 minutes, as AWS. */
  maxSkewMs?: number;
  lookup(accessKeyId: string): Promise<K | undefined>;
}

/** The signer's key record without its secret, and the credential scope's service: which API the client meant (ec2 or sts). */
export type Verified<K extends SigningKey = SigningKey> = Omit<K, "secretAccessKey" | "enabled"> & { service: string };

const ALGORITHM = "AWS4-HMAC-SHA256";
const TERMINATOR = "aws4_request";
const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
const AMZ_DATE_HEADER = "x-amz-date";
const CONTENT_SHA256_HEADER = "x-amz-content-sha256";
const TOKEN_HEADER = "x-amz-security-token";
const MAX_EXPIRES_S = 604_800;
const DEFAULT_MAX_SKEW_MS = 15 * 60_000;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const HEX_SIGNATURE = /^[0-9a-f]{64}$/;
const PRESIGN_PARAMS = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"];

// EC2's words (AuthFailure is also what EC2 answers for a wrong signature,
// where other services say SignatureDoesNotMatch).
const NOT_VALIDATED = "AWS was not able to validate the provided access credentials";
const authFailure = (message = NOT_VALIDATED) => new Ec2Error("AuthFailure", message);
const incomplete = (message: string) => new Ec2Error("IncompleteSignature", message);
const expired = () => new Ec2Error("RequestExpired", "Request has expired.");

/** What a request says about its signature, from its Authorization header or its presigned query. */
interface Claim {
  accessKeyId: string;
  scope: { date: string; region: string; service: string; terminator: string };
  amzDate: string;
  signedHeaders: readonly string[];
  signature: string;
  /** Presigned only: how long after X-Amz-Date the URL is valid. */
  expiresInS?: number;
}

/**
 * Verifies the Signature Version 4 signature of `req`.
 *
 * Resolves only if the request is signed with AWS4-HMAC-SHA256 (Authorization
 * header, or presigned query string) by the enabled secret of its access key,
 * over exactly this method, path, query (every parameter, duplicates kept),
 * the headers named in its SignedHeaders (which include `host`, and
 * `x-amz-date` for the header form) as received, and the body's bytes (a
 * claimed X-Amz-Content-Sha256 must be the body's hash, or UNSIGNED-PAYLOAD
 * with an empty body); with a credential scope of X-Amz-Date's day,
 * `opts.region`, one of `opts.services` and aws4_request; X-Amz-Date within
 * `maxSkewMs` of `now` (a presigned URL: not in the future beyond that, and
 * `now` within X-Amz-Expires, 1..604800 s, of it). The result is the key's
 * record from `opts.lookup` less its secret, and the scope's service.
 *
 * Otherwise rejects with an Ec2Error: MissingParameter (no signature at all),
 * IncompleteSignature (a malformed or incomplete signature), RequestExpired
 * (outside the time window), AuthFailure (wrong scope, session token, unknown
 * or disabled key, or a signature that does not match; the last three with
 * one message, so that a caller cannot tell which keys exist), or
 * InvalidParameterValue (a query string that is not valid percent-encoding).
 * `opts.lookup` is called at most once, only for a well-formed, in-scope,
 * in-time request; its rejections pass through unchanged. No message carries
 * the secret.
 *
 * Not accepted, beyond the above: Signature Version 2, the `Date` header in
 * place of X-Amz-Date, and a signed `date` header (the library's signer
 * drops it; botocore and the JavaScript SDK send X-Amz-Date instead).
 */
export async function verifySignature<K extends SigningKey>(req: SignedRequest, opts: VerifyOptions<K>): Promise<Verified<K>> {
  const query = parseQuery(req.rawQuery);
  const authorization = header(req, "authorization");
  let claim: Claim;
  if (authorization !== undefined) claim = fromAuthorizationHeader(authorization, header(req, AMZ_DATE_HEADER));
  else if (PRESIGN_PARAMS.some((name) => query.has(name))) claim = fromPresignedQuery(query);
  // EC2's answer to an unsigned request, naming Signature Version 2's parameter still.
  else throw new Ec2Error("MissingParameter", "The request must contain the parameter AWSAccessKeyId");

  if (!claim.signedHeaders.includes("host")) throw incomplete("The 'host' header must be among the signed headers.");
  if (header(req, TOKEN_HEADER) !== undefined || query.has("X-Amz-Security-Token")) {
    throw authFailure("Cirrus issues no session credentials: sign with an access key and its secret, without X-Amz-Security-Token.");
  }
  const signingDate = parseAmzDate(claim.amzDate);
  checkScope(claim, opts);
  checkTime(claim, signingDate, opts);

  const key = await opts.lookup(claim.accessKeyId);
  if (!key || !key.enabled) throw authFailure();
  const expected = await signatureFor(req, query, claim, key, signingDate);
  if (!HEX_SIGNATURE.test(claim.signature) || !timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(claim.signature, "hex"))) {
    throw authFailure();
  }
  const { secretAccessKey: _secret, enabled: _enabled, ...record } = key;
  return { ...record, service: claim.scope.service };
}

function header(req: SignedRequest, name: string): string | undefined {
  const value = req.headers[name];
  // Node joins repeated headers itself, except a few it keeps as arrays; SigV4 joins values with ",".
  return Array.isArray(value) ? value.join(",") : value;
}

/**
 * The query's parameters in order of appearance, decoded, duplicates kept.
 * Decoding (then letting the signer encode again, per RFC 3986) rather than
 * signing the raw text is what SigV4 asks: "%7e" and "~" are one parameter.
 * "+" is a plus sign here, not a space, as in any SigV4 client's encoding.
 */
function parseQuery(raw: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  for (const pair of raw.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const [key, value] = eq < 0 ? [pair, ""] : [pair.slice(0, eq), pair.slice(eq + 1)];
    let name: string, decoded: string;
    try {
      name = decodeURIComponent(key);
      decoded = decodeURIComponent(value);
    } catch {
      throw new Ec2Error("InvalidParameterValue", "The query string is not valid percent-encoding.");
    }
    const values = params.get(name);
    if (values) values.push(decoded);
    else params.set(name, [decoded]);
  }
  return params;
}

function fromAuthorizationHeader(authorization: string, amzDate: string | undefined): Claim {
  const space = authorization.indexOf(" ");
  const algorithm = space < 0 ? authorization : authorization.slice(0, space);
  if (algorithm !== ALGORITHM) throw incomplete(`Unsupported authorization algorithm; Cirrus accepts ${ALGORITHM}.`);
  const fields = new Map<string, string>();
  for (const part of authorization.slice(algorithm.length).split(",")) {
    const field = part.trim();
    if (field === "") continue;
    const eq = field.indexOf("=");
    if (eq <= 0) throw incomplete(`'${field}' not a valid key=value pair (missing equal-sign) in Authorization header.`);
    fields.set(field.slice(0, eq), field.slice(eq + 1));
  }
  const credential = fields.get("Credential");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    const missing = ["Credential", "Signature", "SignedHeaders"].filter((name) => !fields.has(name));
    throw incomplete(missing.map((name) => `Authorization header requires '${name}' parameter.`).join(" "));
  }
  if (amzDate === undefined) throw incomplete("Authorization header requires existence of a 'X-Amz-Date' header.");
  const claim = { ...parseCredential(credential), amzDate, signedHeaders: parseSignedHeaders(signedHeaders), signature };
  // Unsigned, X-Amz-Date could be replayed with any date.
  if (!claim.signedHeaders.includes(AMZ_DATE_HEADER)) throw incomplete("The 'x-amz-date' header must be among the signed headers.");
  return claim;
}

function fromPresignedQuery(query: Map<string, string[]>): Claim {
  const missing = PRESIGN_PARAMS.filter((name) => !query.has(name));
  if (missing.length > 0) throw incomplete(`AWS query-string parameters must include ${PRESIGN_PARAMS.map((n) => `'${n}'`).join(", ")}; missing: ${missing.join(", ")}.`);
  const single = (name: string): string => {
    const values = query.get(name) ?? [];
    if (values.length !== 1) throw incomplete(`The query string must hold '${name}' once.`);
    return values[0] ?? "";
  };
  if (single("X-Amz-Algorithm") !== ALGORITHM) throw incomplete(`X-Amz-Algorithm only supports '${ALGORITHM}'.`);
  const expires = single("X-Amz-Expires");
  const expiresInS = /^\d{1,7}$/.test(expires) ? Number(expires) : 0;
  if (expiresInS < 1 || expiresInS > MAX_EXPIRES_S) throw incomplete(`X-Amz-Expires must be a whole number of seconds from 1 to ${MAX_EXPIRES_S}.`);
  return {
    ...parseCredential(single("X-Amz-Credential")),
    amzDate: single("X-Amz-Date"),
    signedHeaders: parseSignedHeaders(single("X-Amz-SignedHeaders")),
    signature: single("X-Amz-Signature"),
    expiresInS,
  };
}

function parseCredential(credential: string): Pick<Claim, "accessKeyId" | "scope"> {
  const parts = credential.split("/");
  const [accessKeyId, date, region, service, terminator] = parts;
  if (parts.length !== 5 || !accessKeyId || !date || !region || !service || !terminator) {
    throw incomplete(`Credential '${credential}' is malformed: expected <access key id>/<YYYYMMDD>/<region>/<service>/${TERMINATOR}.`);
  }
  return { accessKeyId, scope: { date, region, service, terminator } };
}

function parseSignedHeaders(list: string): string[] {
  const names = list.split(";");
  if (names.some((name) => name === "" || name !== name.toLowerCase())) throw incomplete("SignedHeaders must be lower-case header names separated by ';'.");
  return names;
}

/** Scope errors in the words other AWS services use (with EC2's code); the key is not looked up yet, so they reveal nothing about it. */
function checkScope({ scope, amzDate }: Claim, opts: VerifyOptions): void {
  if (scope.terminator !== TERMINATOR) throw authFailure(`Credential should be scoped with a valid terminator: '${TERMINATOR}', not '${scope.terminator}'.`);
  if (scope.date !== amzDate.slice(0, 8)) {
    throw authFailure(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scope.date}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  }
  if (scope.region !== opts.region) throw authFailure(`Credential should be scoped to a valid region, not '${scope.region}'.`);
  if (!opts.services.includes(scope.service)) {
    throw authFailure(`Credential should be scoped to correct service: ${opts.services.map((s) => `'${s}'`).join(" or ")}, not '${scope.service}'.`);
  }
}

/** X-Amz-Date as a Date; it must be a real instant in ISO 8601 basic format (the signer formats the date back and must get the same text). */
function parseAmzDate(amzDate: string): Date {
  const date = AMZ_DATE.test(amzDate) ? new Date(amzDate.replace(AMZ_DATE, "$1-$2-$3T$4:$5:$6Z")) : undefined;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().replace(/[-:]|\.\d{3}/g, "") !== amzDate) throw incomplete("X-Amz-Date must be in ISO 8601 basic format: YYYYMMDD'T'HHMMSS'Z'.");
  return date;
}

function checkTime(claim: Claim, signed: Date, opts: VerifyOptions): void {
  const ageMs = opts.now.getTime() - signed.getTime();
  const maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (-ageMs > maxSkewMs) throw expired();
  if (claim.expiresInS === undefined ? ageMs > maxSkewMs : ageMs > claim.expiresInS * 1000) throw expired();
}

/**
 * The signature the library computes for `req` with `key`. It is handed
 * exactly the headers the client signed (host as received), and told to
 * sign them even where it would skip them by default (user-agent and the
 * like), but not the two it adds itself (x-amz-date from `signingDate`, and
 * x-amz-content-sha256, set here to carry the payload hash) unless the
 * client signed them. applyChecksum is off: the hash header is ours.
 */
async function signatureFor(req: SignedRequest, query: Map<string, string[]>, claim: Claim, key: SigningKey, signingDate: Date): Promise<string> {
  const signed = new Set(claim.signedHeaders);
  const headers = Object.fromEntries(
    claim.signedHeaders.flatMap((name): [string, string][] => {
      const value = name === "host" ? req.host : header(req, name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
  headers[CONTENT_SHA256_HEADER] = payloadHash(req, query);
  const { region, service } = claim.scope;
  const signer = new SignatureV4({ credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey }, region, service, sha256: Hash.bind(null, "sha256"), applyChecksum: false });
  const resigned = await signer.sign(new HttpRequest({ method: req.method, path: req.path, query: Object.fromEntries(query), headers }), {
    signingDate,
    signableHeaders: signed,
    unsignableHeaders: new Set([AMZ_DATE_HEADER, CONTENT_SHA256_HEADER].filter((name) => !signed.has(name))),
    signingRegion: region,
    signingService: service,
  });
  const signature = /Signature=([0-9a-f]{64})$/.exec(resigned.headers["authorization"] ?? "")?.[1];
  if (!signature) throw new Error("@smithy/signature-v4 returned no signature");
  return signature;
}

/**
 * The hash the client signed the body with: the SHA-256 of its bytes. A
 * client may state it (X-Amz-Content-Sha256 header, or the query parameter
 * a presigner hoists it to); a stated hash must be the body's, or
 * UNSIGNED-PAYLOAD for an empty body: the Query API's parameters may be in
 * the body, and they must be signed.
 */
function payloadHash(req: SignedRequest, query: Map<string, string[]>): string {
  const actual = createHash("sha256").update(req.body).digest("hex");
  const stated = header(req, CONTENT_SHA256_HEADER) ?? [...query].find(([name]) => name.toLowerCase() === CONTENT_SHA256_HEADER)?.[1][0];
  if (stated === undefined || stated === actual) return actual;
  if (stated !== UNSIGNED_PAYLOAD) throw authFailure();
  if (req.body.length > 0) throw incomplete("UNSIGNED-PAYLOAD is accepted only for a request without a body; sign the body's SHA-256.");
  return UNSIGNED_PAYLOAD;
}
