// Small files on the runner's host (local or over SSH), read and written
// through commands so the same code works in both cases.
import type { CommandRunner } from "./types.js";

/** The file's content, or undefined when it does not exist. */
export async function readHostFile(runner: CommandRunner, path: string): Promise<string | undefined> {
  const r = await runner.run(["cat", "--", path], { okCodes: [0, 1] });
  if (r.code === 0) return r.stdout.toString("utf8");
  if ((await runner.run(["test", "-e", path], { okCodes: [0, 1] })).code === 0) throw new Error(`cannot read ${path}: ${r.stderr.trim()}`);
  return undefined;
}

/**
 * Postcondition: `path` holds exactly `content` (mode 0644), replaced
 * atomically by rename, so a reader (dnsmasq on SIGHUP) never sees half a file.
 */
export async function writeHostFile(runner: CommandRunner, path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await runner.run(["tee", "--", tmp], { input: content });
  await runner.run(["chmod", "0644", "--", tmp]);
  await runner.run(["mv", "-f", "--", tmp, path]);
}
