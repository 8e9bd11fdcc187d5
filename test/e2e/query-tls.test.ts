// The Query API over HTTPS with the operator's certificate: the AWS SDK
// trusting that certificate works; plain HTTP to the same port gets nothing.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeRegionsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendRaw } from "../src/query.js";
import { Stack } from "../src/stack.js";

const dir = mkdtempSync(join(tmpdir(), "query-tls-"));
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
  "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
const stack = new Stack({ apiEnv: { CIRRUS_QUERY_TLS_CERT_FILE: join(dir, "cert.pem"), CIRRUS_QUERY_TLS_KEY_FILE: join(dir, "key.pem") } });
beforeAll(() => stack.start(0));
afterAll(() => stack.stop());

describe("the Query API over HTTPS", () => {
  it("serves the SDK over TLS with the configured certificate, and nothing over plain HTTP", async () => {
    const endpoint = `https://127.0.0.1:${stack.queryPort}`;
    const ec2 = new EC2Client({
      endpoint, region: "lab-1", credentials: stack.key, maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(join(dir, "cert.pem")) }) }),
    });
    expect((await ec2.send(new DescribeRegionsCommand({}))).Regions?.[0]?.RegionName).toBe("lab-1");
    // A client that does not trust the certificate is refused at the handshake.
    const untrusting = new EC2Client({ endpoint, region: "lab-1", credentials: stack.key, maxAttempts: 1 });
    await expect(untrusting.send(new DescribeRegionsCommand({}))).rejects.toThrow(/self.signed|certificate/i);
    await expect(sendRaw(stack.queryEndpoint, { headers: {}, body: "Action=DescribeRegions" })).rejects.toThrow();
  });
});
