// SSH key material: generating key pairs with node:crypto, reading public
// keys in the formats EC2's ImportKeyPair accepts, writing OpenSSH formats,
// and EC2's fingerprints. Pure functions; nothing here logs or stores.
//
// sshpk does the SSH wire format (RFC 4253 §6.6, RFC 8709 for ed25519) and
// writes the OpenSSH private key format (PROTOCOL.key in OpenSSH); node:crypto
// generates keys, reads DER and hashes. RFC 4716 files are read here (sshpk
// has no reader for them), as are the checks EC2 makes and sshpk does not.
import { createHash, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import sshpk from "sshpk";

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

/** The SSH wire encoding of a key (of a private key's public half). */
function blobOf(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return sshpk.parseKey(pub.export({ type: "spki", format: "pem" }), "pkcs8").toBuffer("rfc4253");
}

/** A public key node:crypto has read, if it is one EC2 accepts. */
function checked(key: KeyObject, blob?: Buffer): PublicKey {
  if (key.asymmetricKeyType === "ed25519") return { type: "ed25519", blob: blob ?? blobOf(key), bits: 256 };
  if (key.asymmetricKeyType !== "rsa") throw new KeyFormatError("only RSA and ed25519 keys are accepted");
  const { modulusLength: bits = 0, publicExponent: e = 0n } = key.asymmetricKeyDetails ?? {};
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) throw new KeyFormatError(`RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, not ${bits}`);
  if (e % 2n === 0n || e < 3n) throw new KeyFormatError("invalid RSA public exponent");
  if (!(Buffer.from(key.export({ format: "jwk" }).n!, "base64url").at(-1)! & 1)) throw new KeyFormatError("invalid RSA modulus");
  return { type: "rsa", blob: blob ?? blobOf(key), rsa: key, bits };
}

/** Decodes an SSH public key blob; `expected` is the algorithm name written beside it, if any. */
export function parseBlob(blob: Buffer, expected?: string): PublicKey {
  const malformed = new KeyFormatError("malformed key blob: truncated, trailing bytes, a field of the wrong size, or a type other than ssh-rsa and ssh-ed25519");
  let key: sshpk.Key;
  try {
    key = sshpk.parseKey(blob, "rfc4253");
  } catch {
    throw malformed;
  }
  if (key.type !== "rsa" && key.type !== "ed25519") throw new KeyFormatError(`unsupported key type ${key.type}: only ssh-rsa and ssh-ed25519 are accepted`);
  if (expected !== undefined && SSH_NAME[key.type] !== expected) throw new KeyFormatError("the key type does not match the key data");
  // sshpk drops extra fields and pads or trims ed25519 keys and integers to
  // size: the blob is a key only if sshpk writes it back byte for byte.
  if (!key.toBuffer("rfc4253").equals(blob)) throw malformed;
  let node: KeyObject;
  try {
    node = createPublicKey(key.toString("pkcs8"));
  } catch {
    throw new KeyFormatError(`invalid ${key.type} key`);
  }
  return checked(node, blob);
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
  return checked(key);
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

/**
 * A new key pair as EC2's CreateKeyPair makes it: RSA 2048 with a PKCS#1 PEM
 * private key and a SHA-1 fingerprint, or ed25519 with an unencrypted OpenSSH
 * private key (what `ssh-keygen -t ed25519` writes, `comment` included) and a
 * SHA-256 fingerprint.
 */
export async function generateSshKeyPair(type: KeyType, comment: string): Promise<GeneratedKeyPair> {
  if (type === "rsa") {
    const { privateKey } = await generate("rsa", { modulusLength: 2048, publicExponent: 65537 });
    const pem = (privateKey.export({ type: "pkcs1", format: "pem" }) as string).trimEnd();
    return { privateKey: pem, publicKey: { type, blob: blobOf(privateKey) }, fingerprint: createdRsaFingerprint(privateKey) };
  }
  const { privateKey } = await generate("ed25519");
  const openssh = sshpk.parsePrivateKey(privateKey.export({ type: "pkcs8", format: "pem" }), "pkcs8");
  openssh.comment = comment;
  const blob = blobOf(privateKey);
  return { privateKey: openssh.toString("openssh"), publicKey: { type, blob }, fingerprint: sha256Fingerprint(blob) };
}
