// `cirrus admin …`: the operator's commands (accounts, access keys, hosts),
// which act on the control plane's database, not through the API. They are
// `cirrus-admin`'s (services/api/src/admin.ts); this runs it with the same
// arguments, so there is one implementation and two ways to call it.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";

/** Runs `cirrus-admin <args>` with this process's streams and environment; resolves with its exit code. */
export function runAdmin(args: readonly string[]): Promise<number> {
  const bin = createRequire(import.meta.url).resolve("@cirrus/api/bin/cirrus-admin.js");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: "inherit" });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 255 : 0)));
  });
}
