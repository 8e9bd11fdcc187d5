// The real executable, as `npx cirrus` runs it: stdout, stderr and exit codes
// of the process.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Ec2Error } from "@cirrus/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeCompute, type FakeCompute } from "./fake-compute.js";

const BIN = fileURLToPath(new URL("../bin/cirrus.js", import.meta.url));

function cirrus(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, AWS_ACCESS_KEY_ID: "AKIAAAAAAAAAAAAAAAAA", AWS_SECRET_ACCESS_KEY: "secret", ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let server: FakeCompute;
beforeAll(async () => {
  server = await startFakeCompute({
    describeRegions: () => ({ Regions: [{ RegionName: "lab", Endpoint: "127.0.0.1:50051", OptInStatus: "opt-in-not-required" }] }),
    deregisterImage: () => {
      throw new Ec2Error("InvalidAMIID.NotFound", "The image id '[ami-0dead]' does not exist");
    },
  });
});
afterAll(() => server.close());

describe("bin/cirrus.js", () => {
  it("prints JSON and exits 0", async () => {
    const out = await cirrus(["describe-regions", "--endpoint", server.endpoint]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(
      '{\n    "Regions": [\n        {\n            "RegionName": "lab",\n            "Endpoint": "127.0.0.1:50051",\n            "OptInStatus": "opt-in-not-required"\n        }\n    ]\n}\n',
    );
  });

  it("exits 254 on a service error, 252 on bad usage, 255 when it cannot connect", async () => {
    const [service, usage, down] = await Promise.all([
      cirrus(["deregister-image", "--image-id", "ami-0dead"], { CIRRUS_ENDPOINT: server.endpoint }),
      cirrus(["deregister-image"]),
      cirrus(["describe-regions", "--endpoint", "127.0.0.1:1"]),
    ]);
    expect(service).toMatchObject({
      code: 254,
      stderr: "An error occurred (InvalidAMIID.NotFound) when calling the DeregisterImage operation: The image id '[ami-0dead]' does not exist\n",
    });
    expect(usage.code).toBe(252);
    expect(usage.stderr).toContain("required option '--image-id <value>' not specified");
    expect(down).toMatchObject({ code: 255, stderr: 'Could not connect to the endpoint URL: "127.0.0.1:1"\n' });
  });
});
