// The demo that `npm run up` boots (deploy/demo.sh), against the real stack
// with a libvirt agent: it launches a demo and shows its boot line; run again
// it finds that demo running; with the demo terminated in between, it
// launches a new one (its client token once made every later run return the
// terminated instance and fail).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, Stack } from "../src/stack.js";

const exec = promisify(execFile);
const stack = new Stack();

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "kvm1", driver: "libvirt", capacity: { vcpus: 4, memoryMib: 4096, diskGib: 20 } });
});
afterAll(() => stack.stop());

/** Runs demo.sh against this stack; resolves with the demo instance it reports running. */
async function demo(): Promise<string> {
  const { stderr } = await exec("bash", [join(repoRoot, "deploy/demo.sh")], { cwd: repoRoot, env: stack.cliEnv(), timeout: 240_000 });
  const m = /demo instance (i-[0-9a-f]+) is running; console: CIRRUS-BOOT instance-id=\1 /.exec(stderr);
  expect(m, stderr).not.toBeNull();
  return m![1]!;
}

describe("the demo", () => {
  it("boots, is found again, and is replaced after it was terminated", async () => {
    const first = await demo();
    expect(await demo()).toBe(first);
    await stack.call("terminateInstances", { InstanceIds: [first] });
    await stack.waitForState([first], "terminated");
    const second = await demo();
    expect(second).not.toBe(first);
    expect((await stack.instance(second)).State?.Name).toBe("running");
  });
});
