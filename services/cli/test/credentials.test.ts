// The CLI finds its key where the aws CLI does.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveSigner } from "../src/credentials.js";

function home(): string {
  const h = mkdtempSync(join(tmpdir(), "cli-home-"));
  mkdirSync(join(h, ".aws"));
  writeFileSync(join(h, ".aws/credentials"), "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n[cirrus]\naws_access_key_id = AKIACIRRUS\naws_secret_access_key = c\n");
  writeFileSync(join(h, ".aws/config"), "[default]\nregion = us-east-1\n[profile cirrus]\nregion = lab-1\nendpoint_url = http://127.0.0.1:8773\n");
  return h;
}

describe("resolveSigner", () => {
  it("reads the named profile's key from credentials and its region from config", async () => {
    const HOME = home();
    expect(await resolveSigner({ HOME }, { profile: "cirrus" })).toEqual({ key: { accessKeyId: "AKIACIRRUS", secretAccessKey: "c" }, region: "lab-1" });
    expect(await resolveSigner({ HOME, AWS_PROFILE: "cirrus" }, {})).toMatchObject({ key: { accessKeyId: "AKIACIRRUS" } });
    expect(await resolveSigner({ HOME }, {})).toEqual({ key: { accessKeyId: "AKIADEFAULT", secretAccessKey: "d" }, region: "us-east-1" });
    expect(await resolveSigner({ HOME, AWS_REGION: "lab-2" }, { profile: "cirrus" })).toMatchObject({ region: "lab-2" });
    expect(await resolveSigner({ HOME }, { profile: "cirrus", region: "lab-3" })).toMatchObject({ region: "lab-3" });
  });

  it("prefers the environment's key unless a profile is named, as the aws CLI does", async () => {
    const HOME = home();
    const env = { HOME, AWS_ACCESS_KEY_ID: "AKIAENV", AWS_SECRET_ACCESS_KEY: "e" };
    expect(await resolveSigner(env, {})).toMatchObject({ key: { accessKeyId: "AKIAENV" } });
    expect(await resolveSigner(env, { profile: "cirrus" })).toMatchObject({ key: { accessKeyId: "AKIACIRRUS" } });
  });

  it("honours AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE", async () => {
    const h = home();
    expect(await resolveSigner({ HOME: "/nonexistent", AWS_SHARED_CREDENTIALS_FILE: join(h, ".aws/credentials"), AWS_CONFIG_FILE: join(h, ".aws/config") }, { profile: "cirrus" }))
      .toMatchObject({ key: { accessKeyId: "AKIACIRRUS" }, region: "lab-1" });
  });

  it("fails with exit 253 without credentials or with an unknown profile", async () => {
    await expect(resolveSigner({ HOME: "/nonexistent" }, {})).rejects.toMatchObject({ exitCode: 253, message: expect.stringMatching(/^Unable to locate credentials/) });
    await expect(resolveSigner({ HOME: home() }, { profile: "nope" })).rejects.toMatchObject({ exitCode: 253, message: "The config profile (nope) could not be found" });
  });
});
