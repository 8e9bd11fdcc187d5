// Accounts and access keys: secrets sealed at rest and shown once; keys
// enabled, disabled and deleted; limits and duplicates refused.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccessKey, createAccount, deleteAccessKey, describeAccounts, findAccessKey, listAccessKeys, MAX_ACCESS_KEYS, updateAccessKey } from "../src/accounts.js";
import { testCore, type TestCore } from "./pg.js";

let t: TestCore;
const secretsKey = randomBytes(32);
beforeAll(async () => {
  t = await testCore();
});
afterAll(() => t?.close());

describe("accounts", () => {
  it("creates accounts with 12-digit ids, refusing a taken name or id", async () => {
    const a = await createAccount(t.core.db, { name: "alice" });
    expect(a.AccountId).toMatch(/^\d{12}$/);
    await createAccount(t.core.db, { name: "bob", accountId: "210987654321" });
    await expect(createAccount(t.core.db, { name: "alice" })).rejects.toMatchObject({ code: "EntityAlreadyExists" });
    await expect(createAccount(t.core.db, { name: "carol", accountId: "210987654321" })).rejects.toMatchObject({ code: "EntityAlreadyExists" });
    await expect(createAccount(t.core.db, { name: "dave", accountId: "12345" })).rejects.toMatchObject({ code: "InvalidParameterValue" });
    await expect(createAccount(t.core.db, { name: "bad name" })).rejects.toMatchObject({ code: "InvalidParameterValue" });
    expect((await describeAccounts(t.core.db, "bob"))[0]!.AccountId).toBe("210987654321");
    await expect(describeAccounts(t.core.db, "nobody")).rejects.toMatchObject({ code: "NoSuchEntity" });
  });

  it("keeps secrets sealed at rest and opens them only with the secrets key", async () => {
    const key = await createAccessKey(t.core.db, secretsKey, "alice");
    expect(key.AccessKeyId).toMatch(/^AKIA[A-Z2-7]{16}$/);
    expect(key.SecretAccessKey).toHaveLength(40);
    const { rows: [row] } = await t.core.db.query<{ secret_sealed: Buffer }>("SELECT secret_sealed FROM access_keys WHERE id = $1", [key.AccessKeyId]);
    expect(row!.secret_sealed.includes(Buffer.from(key.SecretAccessKey))).toBe(false);
    expect(await findAccessKey(t.core.db, secretsKey, key.AccessKeyId)).toMatchObject({ secretAccessKey: key.SecretAccessKey, accountId: key.AccountId, enabled: true });
    await expect(findAccessKey(t.core.db, randomBytes(32), key.AccessKeyId)).rejects.toThrow(/does not open/);
    // A sealed secret copied onto another key's row does not open there.
    const other = await createAccessKey(t.core.db, secretsKey, "alice");
    await t.core.db.query("UPDATE access_keys SET secret_sealed = $1 WHERE id = $2", [row!.secret_sealed, other.AccessKeyId]);
    await expect(findAccessKey(t.core.db, secretsKey, other.AccessKeyId)).rejects.toThrow(/does not open/);
    expect(await findAccessKey(t.core.db, secretsKey, "AKIAAAAAAAAAAAAAAAAA")).toBeUndefined();
  });

  it("disables, enables and deletes keys; lists them without secrets; caps them per account", async () => {
    const key = await createAccessKey(t.core.db, secretsKey, "bob");
    await updateAccessKey(t.core.db, key.AccessKeyId, "Inactive");
    expect((await findAccessKey(t.core.db, secretsKey, key.AccessKeyId))!.enabled).toBe(false);
    await updateAccessKey(t.core.db, key.AccessKeyId, "Active");
    expect((await findAccessKey(t.core.db, secretsKey, key.AccessKeyId))!.enabled).toBe(true);
    const listed = await listAccessKeys(t.core.db, "bob");
    expect(listed).toEqual([{ AccountId: "210987654321", AccessKeyId: key.AccessKeyId, Status: "Active", CreateDate: expect.any(String) }]);
    await deleteAccessKey(t.core.db, key.AccessKeyId);
    expect(await findAccessKey(t.core.db, secretsKey, key.AccessKeyId)).toBeUndefined();
    await expect(deleteAccessKey(t.core.db, key.AccessKeyId)).rejects.toMatchObject({ code: "NoSuchEntity" });
    await expect(updateAccessKey(t.core.db, key.AccessKeyId, "Active")).rejects.toMatchObject({ code: "NoSuchEntity" });
    await Promise.all(Array.from({ length: MAX_ACCESS_KEYS + 3 }, () => createAccessKey(t.core.db, secretsKey, "bob").catch((e: { code: string }) => e.code)));
    expect(await listAccessKeys(t.core.db, "bob")).toHaveLength(MAX_ACCESS_KEYS);
    await expect(createAccessKey(t.core.db, secretsKey, "bob")).rejects.toMatchObject({ code: "LimitExceeded" });
    await expect(createAccessKey(t.core.db, secretsKey, "nobody")).rejects.toMatchObject({ code: "NoSuchEntity" });
  });
});
