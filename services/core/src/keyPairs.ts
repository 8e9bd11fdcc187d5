// CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair. Cirrus keeps
// only the public key; a created key's private half is returned once and never
// stored or logged. Fingerprints are EC2's (see sshKeys.ts).
import { isId, newId } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { RequestContext } from "./context.js";
import { inTransaction, isUniqueViolation } from "./db/tx.js";
import { Ec2Error } from "./errors.js";
import { compileFilters } from "./filters.js";
import { defineOperation } from "./operation.js";
import { defineKind } from "./resource.js";
import { deleteTagsOf, insertTags, loadTags } from "./tags.js";
import { tagsFor, truncate } from "./validate.js";
import { generateSshKeyPair, importedFingerprint, KeyFormatError, openSshLine, parsePublicKey, type KeyType } from "./sshKeys.js";

export interface KeyPairRow {
  id: string;
  owner_id: string;
  name: string;
  key_type: KeyType;
  fingerprint: string;
  public_key: string;
  created_at: Date;
}

const KEY_TYPES: readonly string[] = ["rsa", "ed25519"];

/** EC2: up to 255 ASCII characters. Control characters and edge spaces are refused (the name ends an authorized_keys line). */
function requireKeyName(name: string): void {
  if (!name) throw new Ec2Error("MissingParameter", "The request must contain the parameter KeyName");
  if (!/^\p{ASCII}*$/u.test(name)) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(name)}) for parameter keyName is invalid. Character sets beyond ASCII are not supported.`);
  }
  if (name.length > 255) throw new Ec2Error("InvalidParameterValue", `Value (${truncate(name)}) for parameter keyName is invalid. Length exceeds maximum of 255.`);
  if (!/^[\x20-\x7e]+$/.test(name) || name.trim() !== name) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(name)}) for parameter keyName is invalid. Expecting printable ASCII without leading or trailing spaces.`);
  }
}

const notFoundByName = (names: readonly string[]) =>
  new Ec2Error("InvalidKeyPair.NotFound", `The key pair '${names.join(", ")}' does not exist`);
const notFoundById = (ids: readonly string[]) =>
  new Ec2Error("InvalidKeyPair.NotFound", `The key pair ID${ids.length > 1 ? "s" : ""} '${ids.join(", ")}' ${ids.length > 1 ? "do" : "does"} not exist`);

/** Inserts a key pair and its tags in one transaction; a taken name is InvalidKeyPair.Duplicate and writes nothing. */
async function insertKeyPair(ctx: RequestContext, row: Omit<KeyPairRow, "owner_id" | "created_at">, tags: compute.Tag[]): Promise<void> {
  try {
    await inTransaction(ctx.db, async (db) => {
      await db.query(
        "INSERT INTO key_pairs (id, owner_id, name, key_type, fingerprint, public_key) VALUES ($1,$2,$3,$4,$5,$6)",
        [row.id, ctx.principal.accountId, row.name, row.key_type, row.fingerprint, row.public_key],
      );
      await insertTags(db, ctx.principal.accountId, keyPairKind.resourceType, [row.id], tags);
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new Ec2Error("InvalidKeyPair.Duplicate", `The keypair '${truncate(row.name)}' already exists.`);
    throw err;
  }
}

async function createKeyPair(ctx: RequestContext, req: compute.CreateKeyPairRequest): Promise<compute.CreateKeyPairResponse> {
  requireKeyName(req.KeyName);
  const keyType = req.KeyType || "rsa";
  if (!KEY_TYPES.includes(keyType)) {
    throw new Ec2Error("InvalidParameterValue", `Value (${truncate(keyType)}) for parameter keyType is invalid. Valid values are: rsa, ed25519.`);
  }
  const keyFormat = req.KeyFormat || "pem";
  // EC2 also offers PuTTY's ppk; Cirrus has no ppk writer, so it says so rather than returning another format.
  if (keyFormat === "ppk") throw new Ec2Error("Unsupported", "KeyFormat ppk is not supported by Cirrus; use pem (PuTTYgen converts it)");
  if (keyFormat !== "pem") throw new Ec2Error("InvalidParameterValue", `Value (${truncate(keyFormat)}) for parameter keyFormat is invalid. Valid values are: pem, ppk.`);
  const tags = tagsFor("key-pair", req.TagSpecifications, ["key-pair"]);

  const key = await generateSshKeyPair(keyType as KeyType, req.KeyName);
  const id = newId("key");
  await insertKeyPair(ctx, { id, name: req.KeyName, key_type: key.publicKey.type, fingerprint: key.fingerprint, public_key: openSshLine(key.publicKey, req.KeyName) }, tags);
  ctx.log.info({ keyPairId: id, keyType }, "key pair created");
  return { KeyFingerprint: key.fingerprint, KeyMaterial: key.privateKey, KeyName: req.KeyName, KeyPairId: id, Tags: tags };
}

async function importKeyPair(ctx: RequestContext, req: compute.ImportKeyPairRequest): Promise<compute.ImportKeyPairResponse> {
  requireKeyName(req.KeyName);
  if (req.PublicKeyMaterial.length === 0) throw new Ec2Error("MissingParameter", "The request must contain the parameter PublicKeyMaterial");
  const tags = tagsFor("key-pair", req.TagSpecifications, ["key-pair"]);
  let key;
  try {
    key = parsePublicKey(req.PublicKeyMaterial);
  } catch (err) {
    if (!(err instanceof KeyFormatError)) throw err;
    // EC2's code and words; the reason helps the user and never contains the material.
    throw new Ec2Error("InvalidKey.Format", `Key is not in valid OpenSSH public key format (${err.message})`);
  }
  const id = newId("key");
  const fingerprint = importedFingerprint(key);
  await insertKeyPair(ctx, { id, name: req.KeyName, key_type: key.type, fingerprint, public_key: openSshLine(key, req.KeyName) }, tags);
  ctx.log.info({ keyPairId: id, keyType: key.type }, "key pair imported");
  return { KeyFingerprint: fingerprint, KeyName: req.KeyName, KeyPairId: id, Tags: tags };
}

function keyPairToProto(r: KeyPairRow, tags: compute.Tag[], includePublicKey: boolean): compute.KeyPairInfo {
  return {
    KeyPairId: r.id, KeyFingerprint: r.fingerprint, KeyName: r.name, KeyType: r.key_type, Tags: tags,
    PublicKey: includePublicKey ? r.public_key : "", CreateTime: r.created_at.toISOString(),
  };
}

export const keyPairKind = defineKind<KeyPairRow, compute.KeyPairInfo>({
  name: "key-pair",
  resourceType: "key-pair",
  idPrefix: "key",
  // A malformed id cannot exist: EC2 has no Malformed code for key pairs and answers NotFound.
  malformed: "InvalidKeyPair.NotFound",
  table: "key_pairs",
  notFound: notFoundById,
  filters: { "key-name": "key_pairs.name", "key-pair-id": "key_pairs.id", fingerprint: "key_pairs.fingerprint", "key-type": "key_pairs.key_type" },
  orderBy: "name",
  toApi: async (ctx, rows) => {
    const tags = await loadTags(ctx.db, rows.map((r) => r.id));
    return rows.map((r) => keyPairToProto(r, tags.get(r.id) ?? [], false));
  },
});

/** DescribeKeyPairs has no paging in EC2: every matching key pair, by name. */
async function describeKeyPairs(ctx: RequestContext, req: compute.DescribeKeyPairsRequest): Promise<compute.DescribeKeyPairsResponse> {
  const malformed = req.KeyPairIds.filter((id) => !isId("key", id));
  if (malformed.length) throw notFoundById(malformed);
  const params: unknown[] = [ctx.principal.accountId];
  const where = ["owner_id = $1", ...compileFilters(req.Filters, keyPairKind.filters, "key_pairs.id", params)];
  if (req.KeyNames.length) where.push(`name = ANY($${params.push(req.KeyNames)})`);
  if (req.KeyPairIds.length) where.push(`id = ANY($${params.push(req.KeyPairIds)})`);
  const { rows } = await ctx.db.query<KeyPairRow>(`SELECT * FROM key_pairs WHERE ${where.join(" AND ")} ORDER BY name`, params);
  // Named keys must all exist, unless filters narrowed the answer (as DescribeInstances does).
  if (req.Filters.length === 0) {
    const missingNames = [...new Set(req.KeyNames.filter((n) => !rows.some((r) => r.name === n)))];
    if (missingNames.length) throw notFoundByName(missingNames);
    const missingIds = [...new Set(req.KeyPairIds.filter((id) => !rows.some((r) => r.id === id)))];
    if (missingIds.length) throw notFoundById(missingIds);
  }
  const tags = await loadTags(ctx.db, rows.map((r) => r.id));
  return { KeyPairs: rows.map((r) => keyPairToProto(r, tags.get(r.id) ?? [], req.IncludePublicKey)) };
}

/**
 * DeleteKeyPair by name or by id. As in EC2, deleting a name that does not
 * exist succeeds (Return true, no KeyPairId); an id that does not exist is
 * InvalidKeyPair.NotFound. Instances launched with the key keep it.
 */
async function deleteKeyPair(ctx: RequestContext, req: compute.DeleteKeyPairRequest): Promise<compute.DeleteKeyPairResponse> {
  if (!req.KeyName && !req.KeyPairId) throw new Ec2Error("MissingParameter", "The request must contain the parameter KeyName or KeyPairId");
  if (req.KeyName && req.KeyPairId) throw new Ec2Error("InvalidParameterCombination", "Specify either KeyName or KeyPairId, not both");
  if (req.KeyPairId && !isId("key", req.KeyPairId)) throw notFoundById([req.KeyPairId]);
  const deleted = await inTransaction(ctx.db, async (db) => {
    const { rows } = req.KeyPairId
      ? await db.query<{ id: string }>("DELETE FROM key_pairs WHERE owner_id = $1 AND id = $2 RETURNING id", [ctx.principal.accountId, req.KeyPairId])
      : await db.query<{ id: string }>("DELETE FROM key_pairs WHERE owner_id = $1 AND name = $2 RETURNING id", [ctx.principal.accountId, req.KeyName]);
    if (rows[0]) await deleteTagsOf(db, [rows[0].id]);
    return rows[0]?.id;
  });
  if (!deleted && req.KeyPairId) throw notFoundById([req.KeyPairId]);
  if (deleted) ctx.log.info({ keyPairId: deleted }, "key pair deleted");
  return { Return: true, KeyPairId: deleted ?? "" };
}

/** The key pair RunInstances installs: its name and OpenSSH public key, or InvalidKeyPair.NotFound. */
export async function findKeyPair(ctx: RequestContext, name: string): Promise<{ name: string; publicKey: string }> {
  const { rows } = await ctx.db.query<Pick<KeyPairRow, "name" | "public_key">>(
    "SELECT name, public_key FROM key_pairs WHERE owner_id = $1 AND name = $2",
    [ctx.principal.accountId, name],
  );
  if (!rows[0]) throw notFoundByName([name]);
  return { name: rows[0].name, publicKey: rows[0].public_key };
}

export const keyPairOperations = [
  defineOperation({
    name: "CreateKeyPair",
    summary: "Create a key pair; prints the private key once (save it with --query KeyMaterial --output text > key.pem)",
    request: compute.CreateKeyPairRequest,
    response: compute.CreateKeyPairResponse,
    mutates: true,
    kinds: ["key-pair"],
    handler: createKeyPair,
  }),
  defineOperation({
    name: "ImportKeyPair",
    summary: "Import a public key (OpenSSH, RFC 4716, or base64 DER; rsa or ed25519)",
    request: compute.ImportKeyPairRequest,
    response: compute.ImportKeyPairResponse,
    mutates: true,
    kinds: ["key-pair"],
    handler: importKeyPair,
  }),
  defineOperation({
    name: "DescribeKeyPairs",
    summary: "Describe key pairs",
    request: compute.DescribeKeyPairsRequest,
    response: compute.DescribeKeyPairsResponse,
    mutates: false,
    kinds: ["key-pair"],
    handler: describeKeyPairs,
  }),
  defineOperation({
    name: "DeleteKeyPair",
    summary: "Delete a key pair (by name or ID); instances launched with it keep it",
    request: compute.DeleteKeyPairRequest,
    response: compute.DeleteKeyPairResponse,
    mutates: true,
    kinds: ["key-pair"],
    handler: deleteKeyPair,
  }),
];
