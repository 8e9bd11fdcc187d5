// IMDSv2 session tokens: "<instance id>.<expiry ms>.<HMAC-SHA256>", base64url.
// A token is bound to the instance it was issued to and expires; the key is
// random per agent process, so tokens do not survive an agent restart
// (clients such as cloud-init and the AWS SDKs fetch a new one on 401).
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const MAX_TOKEN_TTL_SECONDS = 21_600;

/** The TTL header's value in seconds, or undefined unless it is an integer in 1..21600. */
export function parseTokenTtl(header: string | undefined): number | undefined {
  if (header === undefined || !/^[0-9]{1,5}$/.test(header.trim())) return undefined;
  const ttl = Number(header.trim());
  return ttl >= 1 && ttl <= MAX_TOKEN_TTL_SECONDS ? ttl : undefined;
}

export class TokenIssuer {
  constructor(
    private readonly key: Buffer = randomBytes(32),
    private readonly now: () => number = Date.now,
  ) {}

  /** A token for `instanceId`, valid for ttlSeconds from now. */
  issue(instanceId: string, ttlSeconds: number): string {
    const payload = Buffer.from(`${instanceId}.${this.now() + ttlSeconds * 1000}`, "utf8").toString("base64url");
    return `${payload}.${this.sign(payload)}`;
  }

  /** True only for an unexpired token this issuer made for `instanceId`. */
  verify(token: string, instanceId: string): boolean {
    const [payload, signature, extra] = token.split(".");
    if (!payload || !signature || extra !== undefined) return false;
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    const [id, expiry] = Buffer.from(payload, "base64url").toString("utf8").split(".");
    return id === instanceId && Number(expiry) > this.now();
  }

  private sign(payload: string): string {
    return createHmac("sha256", this.key).update(payload).digest("base64url");
  }
}
