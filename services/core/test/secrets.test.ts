import { randomBytes } from "node:crypto";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadSecretsKey, seal, unseal } from "../src/secrets.js";

describe("secrets", () => {
  it("opens a sealed secret only with its key, its context and unchanged bytes", () => {
    const key = randomBytes(32);
    const sealed = seal(key, "AKIAONE", "s3cret/+");
    expect(sealed.includes(Buffer.from("s3cret"))).toBe(false);
    expect(unseal(key, "AKIAONE", sealed)).toBe("s3cret/+");
    expect(() => unseal(randomBytes(32), "AKIAONE", sealed)).toThrow();
    expect(() => unseal(key, "AKIATWO", sealed)).toThrow();
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => unseal(key, "AKIAONE", tampered)).toThrow();
    // Sealing twice gives different bytes (a fresh IV each time).
    expect(seal(key, "AKIAONE", "s3cret/+").equals(sealed)).toBe(false);
  });

  it("makes the key file once (0600), whoever asks first, and refuses one of the wrong size", async () => {
    const dir = mkdtempSync(join(tmpdir(), "secrets-"));
    const path = join(dir, "secrets.key");
    await expect(loadSecretsKey(path, { create: false })).rejects.toThrow(/cannot read the secrets key/);
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadSecretsKey(path, { create: true })));
    expect(keys.every((k) => k.equals(keys[0]!))).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    writeFileSync(path, "short");
    await expect(loadSecretsKey(path, { create: true })).rejects.toThrow(/must be 32 bytes/);
  });
});
