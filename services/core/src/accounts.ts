// Accounts and access keys (migration 010). An account is a 12-digit id that
// owns resources; its access keys (id and secret, as AWS's) sign requests.
// Secrets are sealed at rest (secrets.ts) and shown once, at creation.
// Managed by the operator with `cirrus-admin` (services/api/src/admin.ts).
import { randomInt } from "node:crypto";
import type { Pool } from "pg";
import { inTransaction, isUniqueViolation, type Queryable } from "./db/tx.js";
import { Ec2Error } from "./errors.js";
import { seal, unseal } from "./secrets.js";

/** Access keys an account may hold at once (IAM allows two per user; an account here stands for many scripts). */
export const MAX_ACCESS_KEYS = 10;

export interface Account {
  AccountId: string;
  Name: string;
  Operator: boolean;
  CreateDate: string;
}

export type AccessKeyStatus = "Active" | "Inactive";

export interface AccessKeyMetadata {
  AccountId: string;
  AccessKeyId: string;
  Status: AccessKeyStatus;
  CreateDate: string;
}

/** A key as a verifier needs it: the secret in clear, in memory only. */
export interface AccessKeyRecord {
  accessKeyId: string;
  secretAccessKey: string;
  accountId: string;
  enabled: boolean;
  operator: boolean;
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function randomString(alphabet: string, length: number): string {
  return Array.from({ length }, () => alphabet[randomInt(alphabet.length)]).join("");
}

function newAccountId(): string {
  return String(randomInt(1, 10 ** 6)).padStart(6, "0") + String(randomInt(0, 10 ** 6)).padStart(6, "0");
}

interface AccountRow {
  id: string;
  name: string;
  operator: boolean;
  created_at: Date;
}

const toAccount = (r: AccountRow): Account => ({ AccountId: r.id, Name: r.name, Operator: r.operator, CreateDate: r.created_at.toISOString() });

/**
 * Creates an account named `name` (unique), with `accountId` when given, else
 * a random 12-digit id. Throws EntityAlreadyExists for a taken name or id,
 * InvalidParameterValue for a malformed one, having written nothing.
 */
export async function createAccount(db: Queryable, opts: { name: string; accountId?: string; operator?: boolean }): Promise<Account> {
  if (!/^[\w+=,.@-]{1,64}$/.test(opts.name)) throw new Ec2Error("InvalidParameterValue", `Invalid account name '${opts.name}': 1 to 64 letters, digits or _+=,.@-.`);
  if (opts.accountId !== undefined && !/^\d{12}$/.test(opts.accountId)) throw new Ec2Error("InvalidParameterValue", `Invalid account id '${opts.accountId}': 12 digits.`);
  for (;;) {
    try {
      const { rows: [row] } = await db.query<AccountRow>(
        "INSERT INTO accounts (id, name, operator) VALUES ($1, $2, $3) RETURNING *",
        [opts.accountId ?? newAccountId(), opts.name, opts.operator ?? false],
      );
      return toAccount(row!);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const { rows } = await db.query("SELECT 1 FROM accounts WHERE name = $1", [opts.name]);
      if (rows.length) throw new Ec2Error("EntityAlreadyExists", `An account named '${opts.name}' already exists.`);
      if (opts.accountId) throw new Ec2Error("EntityAlreadyExists", `The account ${opts.accountId} already exists.`);
      // A random id that was taken: draw again.
    }
  }
}

/** Every account, or the one named by id or name; NoSuchEntity when a named one does not exist. */
export async function describeAccounts(db: Queryable, which?: string): Promise<Account[]> {
  const { rows } = which === undefined
    ? await db.query<AccountRow>("SELECT * FROM accounts ORDER BY created_at, id")
    : await db.query<AccountRow>("SELECT * FROM accounts WHERE id = $1 OR name = $1", [which]);
  if (which !== undefined && rows.length === 0) throw new Ec2Error("NoSuchEntity", `The account ${which} does not exist.`);
  return rows.map(toAccount);
}

/** The account id named by `which` (an id or a name); NoSuchEntity when there is none. */
async function accountIdOf(db: Queryable, which: string): Promise<string> {
  return (await describeAccounts(db, which))[0]!.AccountId;
}

/**
 * A new active access key for the account named by `which` (id or name).
 * The result holds the secret: the only time it is ever shown. Throws
 * NoSuchEntity for an unknown account, LimitExceeded beyond MAX_ACCESS_KEYS.
 */
export async function createAccessKey(pool: Pool, secretsKey: Buffer, which: string): Promise<AccessKeyMetadata & { SecretAccessKey: string }> {
  return inTransaction(pool, async (db) => {
    const accountId = await accountIdOf(db, which);
    // Serializes key creation per account, so the limit holds under concurrency.
    await db.query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", [accountId]);
    const { rows: [count] } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM access_keys WHERE account_id = $1", [accountId]);
    if (count!.n >= MAX_ACCESS_KEYS) throw new Ec2Error("LimitExceeded", `The account ${accountId} already has ${MAX_ACCESS_KEYS} access keys; delete one first.`);
    const accessKeyId = `AKIA${randomString(BASE32, 16)}`;
    const secret = randomString(SECRET_CHARS, 40);
    const { rows: [row] } = await db.query<{ created_at: Date }>(
      "INSERT INTO access_keys (id, account_id, secret_sealed) VALUES ($1, $2, $3) RETURNING created_at",
      [accessKeyId, accountId, seal(secretsKey, accessKeyId, secret)],
    );
    return { AccountId: accountId, AccessKeyId: accessKeyId, Status: "Active", SecretAccessKey: secret, CreateDate: row!.created_at.toISOString() };
  });
}

interface KeyRow {
  id: string;
  account_id: string;
  status: AccessKeyStatus;
  created_at: Date;
}

const toMetadata = (r: KeyRow): AccessKeyMetadata => ({ AccountId: r.account_id, AccessKeyId: r.id, Status: r.status, CreateDate: r.created_at.toISOString() });

/** The account's keys (never their secrets); NoSuchEntity for an unknown account. */
export async function listAccessKeys(db: Queryable, which: string): Promise<AccessKeyMetadata[]> {
  const accountId = await accountIdOf(db, which);
  const { rows } = await db.query<KeyRow>("SELECT id, account_id, status, created_at FROM access_keys WHERE account_id = $1 ORDER BY created_at, id", [accountId]);
  return rows.map(toMetadata);
}

/** Enables or disables a key, at once for every later request; NoSuchEntity for an unknown key. */
export async function updateAccessKey(db: Queryable, accessKeyId: string, status: AccessKeyStatus): Promise<AccessKeyMetadata> {
  const { rows: [row] } = await db.query<KeyRow>("UPDATE access_keys SET status = $2 WHERE id = $1 RETURNING id, account_id, status, created_at", [accessKeyId, status]);
  if (!row) throw new Ec2Error("NoSuchEntity", `The access key ${accessKeyId} does not exist.`);
  return toMetadata(row);
}

/** Deletes a key for good; NoSuchEntity for an unknown key. */
export async function deleteAccessKey(db: Queryable, accessKeyId: string): Promise<void> {
  const { rowCount } = await db.query("DELETE FROM access_keys WHERE id = $1", [accessKeyId]);
  if (!rowCount) throw new Ec2Error("NoSuchEntity", `The access key ${accessKeyId} does not exist.`);
}

/**
 * The key `accessKeyId` with its secret unsealed, for signature checks;
 * undefined when there is no such key. Throws when the secret cannot be
 * unsealed (the configured secrets key is not the one it was sealed with).
 */
export async function findAccessKey(db: Queryable, secretsKey: Buffer, accessKeyId: string): Promise<AccessKeyRecord | undefined> {
  const { rows: [row] } = await db.query<{ id: string; account_id: string; status: AccessKeyStatus; secret_sealed: Buffer; operator: boolean }>(
    "SELECT k.id, k.account_id, k.status, k.secret_sealed, a.operator FROM access_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1",
    [accessKeyId],
  );
  if (!row) return undefined;
  let secretAccessKey: string;
  try {
    secretAccessKey = unseal(secretsKey, row.id, row.secret_sealed);
  } catch {
    throw new Error(`the secret of access key ${row.id} does not open with the configured secrets key (CIRRUS_SECRETS_KEY_FILE)`);
  }
  return { accessKeyId: row.id, secretAccessKey, accountId: row.account_id, enabled: row.status === "Active", operator: row.operator };
}

