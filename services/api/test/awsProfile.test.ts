import { mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { replaceSection, writeAwsProfile } from "../src/awsProfile.js";

describe("writeAwsProfile", () => {
  it("replaces only its own section, keeping the user's other profiles and comments", async () => {
    const home = mkdtempSync(join(tmpdir(), "home-"));
    mkdirSync(join(home, ".aws"));
    writeFileSync(join(home, ".aws/credentials"), "# mine\n[default]\naws_access_key_id = AKIAMINE\n\n[cirrus]\naws_access_key_id = OLD\naws_secret_access_key = OLD\n[work]\naws_access_key_id = AKIAWORK\n");
    const profile = { name: "cirrus", accessKeyId: "AKIANEW", secretAccessKey: "sec", region: "lab-1", endpointUrl: "http://127.0.0.1:8773" };
    await writeAwsProfile(home, profile);
    await writeAwsProfile(home, profile);
    expect(readFileSync(join(home, ".aws/credentials"), "utf8")).toBe(
      "# mine\n[default]\naws_access_key_id = AKIAMINE\n\n[cirrus]\naws_access_key_id = AKIANEW\naws_secret_access_key = sec\n[work]\naws_access_key_id = AKIAWORK\n");
    expect(readFileSync(join(home, ".aws/config"), "utf8")).toBe("[profile cirrus]\nregion = lab-1\nendpoint_url = http://127.0.0.1:8773\noutput = json\n");
    expect(statSync(join(home, ".aws/credentials")).mode & 0o777).toBe(0o600);
  });

  it("appends a section that is not there", () => {
    expect(replaceSection("", "[a]", ["x = 1"])).toBe("[a]\nx = 1\n");
    expect(replaceSection("[b]\ny = 2\n", "[a]", ["x = 1"])).toBe("[b]\ny = 2\n\n[a]\nx = 1\n");
  });
});
