// Small files (and signals) on the runner's host, local or over SSH. A
// runner that can do these in-process (LocalRunner: node:fs) offers
// `files`; otherwise each helper runs the equivalent commands, so the same
// code works in both cases with the same results.
import { randomBytes } from "node:crypto";
import type { CommandRunner, HostFileStat } from "./types.js";

/** The file's content, or undefined when it does not exist. */
export async function readHostFile(runner: CommandRunner, path: string): Promise<string | undefined> {
  if (runner.files) return (await runner.files.read(path))?.toString("utf8");
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
  if (runner.files) return runner.files.writeAtomic(path, content, 0o644);
  const tmp = `${path}.tmp`;
  await runner.run(["tee", "--", tmp], { input: content });
  await runner.run(["chmod", "0644", "--", tmp]);
  await runner.run(["mv", "-f", "--", tmp, path]);
}

/** Postcondition: none of `paths` exists (as rm -f: missing ones are fine). */
export async function removeHostFiles(runner: CommandRunner, paths: readonly string[]): Promise<void> {
  if (paths.length === 0) return;
  if (runner.files) return runner.files.remove(paths);
  await runner.run(["rm", "-f", "--", ...paths]);
}

/** Postcondition: `to` is what `from` was, replaced atomically (same filesystem); `from` is gone. */
export async function moveHostFile(runner: CommandRunner, from: string, to: string): Promise<void> {
  if (runner.files) return runner.files.rename(from, to);
  await runner.run(["mv", "-f", "--", from, to]);
}

/** Postcondition: `path` has permission bits `mode` (as chmod). */
export async function setHostFileMode(runner: CommandRunner, path: string, mode: number): Promise<void> {
  if (runner.files) return runner.files.chmod(path, mode);
  await runner.run(["chmod", mode.toString(8).padStart(4, "0"), "--", path]);
}

/** Each of `paths` with every symlink followed, as realpath -m resolves it (what does not exist is kept as written). */
export async function resolveHostPaths(runner: CommandRunner, paths: readonly string[]): Promise<string[]> {
  const files = runner.files;
  if (files) return Promise.all(paths.map((p) => files.realpath(p)));
  if (paths.length === 0) return [];
  // -z: one NUL-terminated answer per path, in order, whatever the names hold.
  const out = (await runner.run(["realpath", "-m", "-z", "--", ...paths])).stdout.toString("utf8").split("\0");
  if (out.length !== paths.length + 1) throw new Error(`realpath answered ${out.length - 1} paths for ${paths.length}`);
  return out.slice(0, paths.length);
}

/** Whether `path` exists (as test -e). */
export async function hostPathExists(runner: CommandRunner, path: string): Promise<boolean> {
  if (runner.files) return (await runner.files.stat(path)) !== undefined;
  return (await runner.run(["test", "-e", path], { okCodes: [0, 1] })).code === 0;
}

/**
 * The identity (device, inode, size, modification time) of each of `paths`
 * that is a regular file, undefined for each that is not (missing, a
 * directory…): one command for all of them without in-process files.
 */
export async function hostFileIdentities(runner: CommandRunner, paths: readonly string[]): Promise<Array<string | undefined>> {
  return (await regularFileStats(runner, paths)).map((s) => s?.identity);
}

/** The size in bytes of each of `paths` that is a regular file, undefined for each that is not; one command for all of them without in-process files. */
export async function hostFileSizes(runner: CommandRunner, paths: readonly string[]): Promise<Array<number | undefined>> {
  return (await regularFileStats(runner, paths)).map((s) => s?.size);
}

async function regularFileStats(runner: CommandRunner, paths: readonly string[]): Promise<Array<HostFileStat | undefined>> {
  const files = runner.files;
  if (files) return Promise.all(paths.map(async (p) => {
    const s = await files.stat(p);
    return s?.isFile ? s : undefined;
  }));
  if (paths.length === 0) return [];
  // One line per path that exists; stat exits 1 when any is missing. %F is the type in words.
  const r = await runner.run(["stat", "-L", "--printf", "%n\\0%F\\0%d:%i:%s:%.9Y\\0%s\\n", "--", ...paths], { okCodes: [0, 1] });
  const found = new Map<string, HostFileStat>();
  for (const line of r.stdout.toString("utf8").split("\n")) {
    const [name, type, identity, size] = line.split("\0");
    if (name !== undefined && identity !== undefined && size !== undefined && (type === "regular file" || type === "regular empty file")) found.set(name, { isFile: true, identity, size: Number(size) });
  }
  return paths.map((p) => found.get(p));
}

/**
 * Postcondition: `path` is a new sparse file of `sizeBytes` bytes reading
 * as zeros, with permission bits `mode`. Whatever was there is unlinked,
 * not overwritten, so a process holding it open keeps what it had.
 */
export async function makeSparseHostFile(runner: CommandRunner, path: string, sizeBytes: number, mode: number): Promise<void> {
  if (runner.files) return runner.files.makeSparse(path, sizeBytes, mode);
  await removeHostFiles(runner, [path]);
  await runner.run(["truncate", "-s", String(sizeBytes), "--", path]);
  await setHostFileMode(runner, path, mode);
}

/** Sends `signal` to `pid` on the host; false when there is no such process. */
export async function signalHostProcess(runner: CommandRunner, pid: number, signal: "SIGHUP" | "SIGTERM"): Promise<boolean> {
  if (runner.files) return runner.files.signal(pid, signal);
  return (await runner.run(["kill", `-${signal.slice(3)}`, String(pid)], { okCodes: [0, 1] })).code === 0;
}

/**
 * Runs `use` with a new file holding `content` (mode 0600, in /tmp on the
 * runner's host), removed afterwards whatever happens. For tools that read
 * only from a named file (virsh): /dev/stdin does not work locally, since
 * Node gives a child a socket (not a pipe) as stdin and open(2) of a socket
 * is ENXIO.
 */
export async function withHostTempFile<T>(runner: CommandRunner, prefix: string, content: string, use: (path: string) => Promise<T>): Promise<T> {
  let tmp: string;
  if (runner.files) {
    // A random name, written with the file API's atomic replace: nobody else writes /tmp/cirrus-*-<96 random bits>.
    tmp = `/tmp/${prefix}.${randomBytes(12).toString("hex")}.xml`;
    await runner.files.writeAtomic(tmp, content, 0o600);
  } else {
    tmp = (await runner.run(["mktemp", "--suffix=.xml", `/tmp/${prefix}.XXXXXXXX`])).stdout.toString("utf8").trim();
    await runner.run(["tee", "--", tmp], { input: content });
  }
  try {
    return await use(tmp);
  } finally {
    await removeHostFiles(runner, [tmp]).catch(() => undefined);
  }
}
