// Shared test fixtures.
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";
import { clusterChannelCredentials, clusterServerCredentials, CONTROL_PLANE_CN, createCa, createLogger, issueCredential, type Credential, type Logger } from "@cirrus/common";
import type { agent } from "@cirrus/proto";

/** A real logger that prints nothing, so test output stays readable. */
export function quietLogger(): Logger {
  const log = createLogger("host-agent-test");
  log.level = "silent";
  return log;
}

/** Instance ids for tests that need a few distinct, valid ones. */
export const A = "i-0000000000000000a";
export const B = "i-0000000000000000b";
export const C = "i-0000000000000000c";

export const testImage: agent.ImageSpec = { imageId: "ami-0123456789abcdef0", rootPath: "/images/a/rootfs.qcow2", kernelPath: "", ramdiskPath: "", kernelCmdline: "" };

export function testSpec(instanceId: string, vcpus = 1, memoryMib = 256, rootDiskGib = 1): agent.InstanceSpec {
  return { instanceId, vcpus, memoryMib, rootDiskGib, image: testImage, network: undefined, reuseRootDisk: false, volumes: [], instanceStore: [] };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** Polls `check` until it returns true or the deadline passes. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A throwaway cluster CA for tests: the control plane's credential (naming 127.0.0.1) and the CA's certificate in a file, as the API writes it. */
export async function testPki(): Promise<{ ca: Credential; controlPlane: Credential; caFile: string; serverCredentials: () => ServerCredentials; channelCredentials: () => ChannelCredentials }> {
  const ca = await createCa("test CA");
  const controlPlane = await issueCredential(ca, CONTROL_PLANE_CN, ["127.0.0.1", "localhost"]);
  const dir = mkdtempSync(join(tmpdir(), "cirrus-test-ca-"));
  const caFile = join(dir, "ca.pem");
  writeFileSync(caFile, ca.certPem);
  return {
    ca,
    controlPlane,
    caFile,
    serverCredentials: () => clusterServerCredentials(ca.certPem, controlPlane, false),
    channelCredentials: () => clusterChannelCredentials(ca.certPem, controlPlane),
  };
}
