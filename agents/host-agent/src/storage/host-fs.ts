// The few file operations the stores need beyond runner/host-files.ts,
// in-process where the runner can and as commands otherwise.
import { setHostFileMode } from "../runner/host-files.js";
import type { CommandRunner } from "../runner/types.js";

/** Postcondition: each directory exists with its mode (parents made as needed). */
export async function ensureDirs(runner: CommandRunner, dirs: ReadonlyArray<readonly [path: string, mode: number]>): Promise<void> {
  await runner.run(["mkdir", "-p", "--", ...dirs.map(([path]) => path)]);
  for (const [path, mode] of dirs) await setHostFileMode(runner, path, mode);
}

/**
 * A store's directories: its root and data directory 0711 (QEMU's user
 * traverses them to open a disk and its backing chain; nobody else lists
 * them), its locks 0700 (root's alone).
 */
export function ensureStoreDirs(runner: CommandRunner, root: string, dataDir: string, locksDir: string): Promise<void> {
  return ensureDirs(runner, [[root, 0o711], [dataDir, 0o711], [locksDir, 0o700]]);
}

/** `make`'s promise, made at the first call and shared by later ones; made again after it failed. */
export function sharedUntilFailure<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make().catch((err: unknown) => {
    made = undefined;
    throw err;
  }));
}

/** The names in `dir` (none when it does not exist). */
export async function listNames(runner: CommandRunner, dir: string): Promise<string[]> {
  const r = await runner.run(["ls", "-A1", "--", dir], { okCodes: [0, 2] });
  if (r.code !== 0) return [];
  return r.stdout.toString("utf8").split("\n").filter((name) => name !== "");
}

/** Postcondition: `path` holds exactly `content`, mode 0600, replaced atomically (a reader sees the old file or the new one). */
export async function writePrivateFile(runner: CommandRunner, path: string, content: string): Promise<void> {
  if (runner.files) return runner.files.writeAtomic(path, content, 0o600);
  const tmp = `${path}.tmp`;
  await runner.run(["tee", "--", tmp], { input: content });
  await runner.run(["chmod", "0600", "--", tmp]);
  await runner.run(["mv", "-f", "--", tmp, path]);
}
