// SSH key material: generating key pairs with node:crypto, reading public
// keys in the formats EC2's ImportKeyPair accepts, writing OpenSSH formats,
// and EC2's fingerprints. Pure functions; nothing here logs or stores.
//
// Formats: the OpenSSH public key line and wire blob (RFC 4253 §6.6, RFC 8709
// for ed25519), the SSH2 public key file (RFC 4716), the OpenSSH private key
// format (PROTOCOL.key in OpenSSH), PKCS#1 PEM for RSA private keys.
import { createHash, createPublicKey, generateKeyPair, randomBytes, type KeyObject } from "node:crypto";
import { promisify } from "node:util";

export type KeyType = "rsa" | "ed25519";

/** A public key, decoded and checked. `blob` is its canonical SSH wire encoding. */
export interface PublicKey {
  type: KeyType;
  blob: Buffer;
  /** For RSA: the key as a KeyObject (its SubjectPublicKeyInfo gives the import fingerprint). */
  rsa?: KeyObject;
  /** RSA modulus size in bits; 256 for ed25519. */
  bits: number;
}

/** Thrown for material that is not a public key Cirrus accepts; the caller maps it to EC2's error. */
export class KeyFormatError extends Error {}

const SSH_NAME: Record<KeyType, string> = { rsa: "ssh-rsa", ed25519: "ssh-ed25519" };
/** RSA sizes ImportKeyPair accepts: EC2 documents 1024 to 4096; OpenSSH itself stops at 16384. */
export const RSA_MIN_BITS = 1024;
export const RSA_MAX_BITS = 16384;

// ---- SSH wire encoding (RFC 4251 §5) ----

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function sshUint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A non-negative integer (big-endian magnitude) as an mpint: no leading zeros, a 0x00 when the high bit is set. */
function sshMpint(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  return sshString(trimmed.length && trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

class WireReader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  string(): Buffer {
    if (this.at + 4 > this.buf.length) throw new KeyFormatError("truncated key blob");
    const len = this.buf.readUInt32BE(this.at);
    if (this.at + 4 + len > this.buf.length) throw new KeyFormatError("truncated key blob");
    const out = this.buf.subarray(this.at + 4, this.at + 4 + len);
    this.at += 4 + len;
    return out;
  }

  /** A positive mpint's magnitude. */
  positiveMpint(): Buffer {
    const raw = this.string();
    if (raw.length === 0 || raw[0]! & 0x80) throw new KeyFormatError("invalid RSA integer");
    let i = 0;
    while (i < raw.length - 1 && raw[i] === 0) i++;
    return raw.subarray(i);
  }

  end(): void {
    if (this.at !== this.buf.length) throw new KeyFormatError("trailing bytes after the key");
  }
}

export function rsaBlob(n: Buffer, e: Buffer): Buffer {
  return Buffer.concat([sshString("ssh-rsa"), sshMpint(e), sshMpint(n)]);
}

export function ed25519Blob(pub: Buffer): Buffer {
  return Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
}

// ---- Reading public keys ----

function bitLength(magnitude: Buffer): number {
  let i = 0;
  while (i < magnitude.length && magnitude[i] === 0) i++;
  if (i === magnitude.length) return 0;
  return (magnitude.length - i - 1) * 8 + (32 - Math.clz32(magnitude[i]!));
}

function rsaFrom(n: Buffer, e: Buffer): PublicKey {
  const bits = bitLength(n);
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) throw new KeyFormatError(`RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, not ${bits}`);
  if (!(e[e.length - 1]! & 1) || (e.length === 1 && e[0]! < 3)) throw new KeyFormatError("invalid RSA public exponent");
  if (!(n[n.length - 1]! & 1)) throw new KeyFormatError("invalid RSA modulus");
  let rsa: KeyObject;
  try {
    rsa = createPublicKey({ key: { kty: "RSA", n: n.toString("base64url"), e: e.toString("base64url") }, format: "jwk" });
  } catch {
    throw new KeyFormatError("invalid RSA key");
  }
  return { type: "rsa", blob: rsaBlob(n, e), rsa, bits };
}

function ed25519From(pub: Buffer): PublicKey {
  if (pub.length !== 32) throw new KeyFormatError("ed25519 keys are 32 bytes");
  try {
    createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: pub.toString("base64url") }, format: "jwk" });
  } catch {
    throw new KeyFormatError("invalid ed25519 key");
  }
  return { type: "ed25519", blob: ed25519Blob(pub), bits: 256 };
}

/** Decodes an SSH public key blob; `expected` is the algorithm name written beside it, if any. */
export function parseBlob(blob: Buffer, expected?: string): PublicKey {
  const r = new WireReader(blob);
  const name = r.string().toString("latin1");
  if (expected !== undefined && name !== expected) throw new KeyFormatError("the key type does not match the key data");
  let key: PublicKey;
  if (name === "ssh-rsa") {
    const e = r.positiveMpint();
    const n = r.positiveMpint();
    key = rsaFrom(n, e);
  } else if (name === "ssh-ed25519") {
    key = ed25519From(r.string());
  } else {
    throw new KeyFormatError(`unsupported key type ${JSON.stringify(name.slice(0, 40))}: only ssh-rsa and ssh-ed25519 are accepted`);
  }
  r.end();
  return key;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeBase64(text: string): Buffer {
  if (!BASE64.test(text) || text.length % 4 !== 0) throw new KeyFormatError("invalid base64");
  return Buffer.from(text, "base64");
}

/** `ssh-ed25519 AAAA… comment` (one line, no authorized_keys options). */
function parseOpenSsh(text: string): PublicKey {
  const [type, data] = text.split(/\s+/);
  if (!type || !data) throw new KeyFormatError("expected '<type> <base64> [comment]'");
  return parseBlob(decodeBase64(data), type);
}

const SSH2_BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----";
const SSH2_END = "---- END SSH2 PUBLIC KEY ----";

/** RFC 4716: header lines (`Tag: value`, `\` continues a line), then the base64 blob, between BEGIN/END markers. */
function parseRfc4716(text: string): PublicKey {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  if (lines[0] !== SSH2_BEGIN || lines[lines.length - 1] !== SSH2_END) throw new KeyFormatError("incomplete SSH2 public key");
  const body = lines.slice(1, -1);
  let i = 0;
  while (i < body.length) {
    const line = body[i]!;
    if (!/^[\x21-\x39\x3b-\x7e]{1,64}:/.test(line)) break;
    let continued = line.endsWith("\\");
    i++;
    while (continued && i < body.length) continued = body[i++]!.endsWith("\\");
  }
  return parseBlob(decodeBase64(body.slice(i).join("")));
}

/** Base64 of a DER SubjectPublicKeyInfo holding an RSA or ed25519 key. */
function parseDer(text: string): PublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: decodeBase64(text), format: "der", type: "spki" });
  } catch {
    throw new KeyFormatError("not a DER public key");
  }
  const jwk = key.export({ format: "jwk" });
  if (key.asymmetricKeyType === "rsa" && jwk.n && jwk.e) return rsaFrom(Buffer.from(jwk.n, "base64url"), Buffer.from(jwk.e, "base64url"));
  if (key.asymmetricKeyType === "ed25519" && jwk.x) return ed25519From(Buffer.from(jwk.x, "base64url"));
  throw new KeyFormatError("only RSA and ed25519 keys are accepted");
}

/**
 * The public key in `material`, in one of the formats EC2's ImportKeyPair
 * accepts: an OpenSSH public key line, an RFC 4716 SSH2 public key file, or
 * base64 of a DER public key. Throws KeyFormatError for anything else.
 */
export function parsePublicKey(material: Buffer): PublicKey {
  const text = material.toString("utf8").trim();
  if (!text || !/^[\t\n\r\x20-\x7e]+$/.test(text)) throw new KeyFormatError("the key is not printable ASCII");
  if (text.startsWith("---- BEGIN SSH2")) return parseRfc4716(text);
  if (text.includes("\n")) throw new KeyFormatError("expected a single line");
  if (/^[a-z0-9@.-]+\s/.test(text)) return parseOpenSsh(text);
  return parseDer(text);
}

/** The OpenSSH public key line: `ssh-rsa AAAA… comment`. */
export function openSshLine(key: Pick<PublicKey, "type" | "blob">, comment: string): string {
  return `${SSH_NAME[key.type]} ${key.blob.toString("base64")}${comment ? ` ${comment}` : ""}`;
}

// ---- Fingerprints, as EC2 computes them ----

function colonHex(digest: Buffer): string {
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** ed25519 (created or imported): base64 SHA-256 of the public key blob, with its `=` padding. */
export function sha256Fingerprint(blob: Buffer): string {
  return createHash("sha256").update(blob).digest("base64");
}

/** RSA created by EC2: SHA-1 of the DER PKCS#8 private key. */
export function createdRsaFingerprint(privateKey: KeyObject): string {
  return colonHex(createHash("sha1").update(privateKey.export({ type: "pkcs8", format: "der" })).digest());
}

/** RSA imported: MD5 of the DER SubjectPublicKeyInfo. */
export function importedRsaFingerprint(publicKey: KeyObject): string {
  return colonHex(createHash("md5").update(publicKey.export({ type: "spki", format: "der" })).digest());
}

/** The fingerprint EC2 shows for an imported key. */
export function importedFingerprint(key: PublicKey): string {
  return key.type === "rsa" ? importedRsaFingerprint(key.rsa!) : sha256Fingerprint(key.blob);
}

// ---- Generating key pairs ----

export interface GeneratedKeyPair {
  /** The private key as EC2 returns it: RSA without a trailing newline, OpenSSH format with one (ssh needs it). */
  privateKey: string;
  publicKey: Pick<PublicKey, "type" | "blob">;
  fingerprint: string;
}

const generate = promisify(generateKeyPair);

/** An OpenSSH private key file (unencrypted) holding one ed25519 key: what `ssh-keygen -t ed25519` writes. */
export function openSshEd25519PrivateKey(seed: Buffer, pub: Buffer, comment: string): string {
  const blob = ed25519Blob(pub);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, sshString("ssh-ed25519"), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  // Padded with 1, 2, 3, … to the cipher block size (8 for "none").
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    sshUint32(1),
    sshString(blob),
    sshString(secret),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  // OpenSSH requires the newline after the END marker.
  return ["-----BEGIN OPENSSH PRIVATE KEY-----", ...lines, "-----END OPENSSH PRIVATE KEY-----", ""].join("\n");
}

/**
 * A new key pair as EC2's CreateKeyPair makes it: RSA 2048 with a PKCS#1 PEM
 * private key and a SHA-1 fingerprint, or ed25519 with an OpenSSH private key
 * and a SHA-256 fingerprint. `comment` goes into the ed25519 private key.
 */
export async function generateSshKeyPair(type: KeyType, comment: string): Promise<GeneratedKeyPair> {
  if (type === "rsa") {
    const { privateKey } = await generate("rsa", { modulusLength: 2048, publicExponent: 65537 });
    const jwk = privateKey.export({ format: "jwk" });
    const blob = rsaBlob(Buffer.from(jwk.n!, "base64url"), Buffer.from(jwk.e!, "base64url"));
    const pem = (privateKey.export({ type: "pkcs1", format: "pem" }) as string).trimEnd();
    return { privateKey: pem, publicKey: { type, blob }, fingerprint: createdRsaFingerprint(privateKey) };
  }
  const { privateKey } = await generate("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d!, "base64url");
  const pub = Buffer.from(jwk.x!, "base64url");
  const blob = ed25519Blob(pub);
  return { privateKey: openSshEd25519PrivateKey(seed, pub, comment), publicKey: { type, blob }, fingerprint: sha256Fingerprint(blob) };
}
