// Secrets at rest: access keys' secrets are sealed with AES-256-GCM under the
// operator's secrets key (a 32-byte file, CIRRUS_SECRETS_KEY_FILE), because
// SigV4 verification needs the secret itself, not a hash of it. The key id
// is the additional authenticated data, so a sealed secret moved to another
// key's row does not open.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { link, readFile, unlink, writeFile } from "node:fs/promises";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The format's first byte, so another scheme can follow without guessing. */
const FORMAT = 1;

/**
 * The secrets key in `path`. With `create`, a missing file is made (random,
 * mode 0600, exclusively: of processes creating it at once, all end up with
 * the one that won). Throws when the file is missing (without `create`)
 * or is not exactly 32 bytes.
 */
export async function loadSecretsKey(path: string, opts: { create: boolean }): Promise<Buffer> {
  if (opts.create) {
    // Written aside, then linked into place: link() fails if the file exists,
    // and a reader never sees a half-written key.
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    await writeFile(tmp, randomBytes(KEY_BYTES), { mode: 0o600, flag: "wx" });
    try {
      await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EEXIST") throw err;
      });
    } finally {
      await unlink(tmp);
    }
  }
  const key = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the secrets key ${path} (CIRRUS_SECRETS_KEY_FILE): ${err.message}`);
  });
  if (key.length !== KEY_BYTES) throw new Error(`the secrets key ${path} (CIRRUS_SECRETS_KEY_FILE) must be ${KEY_BYTES} bytes, not ${key.length}`);
  return key;
}

/** `secret` sealed under `key`, bound to `context` (the access key id). */
export function seal(key: Buffer, context: string, secret: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from([FORMAT]), iv, cipher.getAuthTag(), body]);
}

/** The secret `seal` sealed; throws when the key or the context is not the one it was sealed with, or the bytes were changed. */
export function unseal(key: Buffer, context: string, sealed: Buffer): string {
  if (sealed[0] !== FORMAT || sealed.length < 1 + IV_BYTES + TAG_BYTES) throw new Error("not a sealed secret");
  const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(1, 1 + IV_BYTES));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
}
