// Runs the whole CLI in-process (`run`) against a fake Compute server, for
// the tests of argv → request, output, waiting and exit codes.
import { run, type Io, type RunOptions } from "../src/cli.js";
import { startFakeCompute, type FakeCompute, type Handlers } from "./fake-compute.js";

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** A key to sign with (the fake server does not check signatures; the e2e suite's real one does). */
const TEST_KEY = { AWS_ACCESS_KEY_ID: "AKIAAAAAAAAAAAAAAAAA", AWS_SECRET_ACCESS_KEY: "secret" };

let server: FakeCompute | undefined;

/** Stops the server the last `cirrus` started, if any (for afterEach, or before a second `cirrus` in one test). */
export async function stopServer(): Promise<void> {
  await server?.close();
  server = undefined;
}

/** Runs `cirrus <argv>` against a fresh fake server answering with `handlers`; --wait polls every millisecond unless `options` say otherwise. */
export async function cirrus(handlers: Handlers, argv: string[], env: Record<string, string> = {}, options: RunOptions = {}): Promise<Outcome & { server: FakeCompute }> {
  server = await startFakeCompute(handlers);
  const out = await runAgainst(server.endpoint, argv, env, options);
  return { ...out, server };
}

/** Runs `cirrus <argv>` against `endpoint`, with the test key and a non-terminal stderr. */
export async function runAgainst(endpoint: string, argv: string[], env: Record<string, string> = {}, options: RunOptions = {}): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), stderrIsTTY: false, env: { CIRRUS_ENDPOINT: endpoint, ...TEST_KEY, ...env } };
  const code = await run(argv, io, { pollMs: 1, ...options });
  return { code, stdout, stderr };
}
