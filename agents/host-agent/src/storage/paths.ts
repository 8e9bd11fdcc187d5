// Ids, sizes and paths of the storage stores: every name a store writes or
// removes is built here from a checked id, and every path a caller hands in
// is checked here, so no request can reach a file outside the store.
import { posix } from "node:path";
import { isBelow, isPlainAbsolutePath } from "@cirrus/common";
import { StorageError } from "./types.js";

const VOLUME_ID = /^vol-[0-9a-f]{17}$/;
const SNAPSHOT_ID = /^snap-[0-9a-f]{17}$/;
const GIB = 1024 ** 3;
/** EC2's largest volume (io2 Block Express) is 64 TiB. */
const MAX_SIZE_GIB = 65_536;

export function checkVolumeId(id: string): string {
  if (!VOLUME_ID.test(id)) throw new StorageError("InvalidArgument", `not a volume id: ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}

export function checkSnapshotId(id: string): string {
  if (!SNAPSHOT_ID.test(id)) throw new StorageError("InvalidArgument", `not a snapshot id: ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}

export function isSnapshotId(id: string): boolean {
  return SNAPSHOT_ID.test(id);
}

/** `sizeGiB` in bytes, after checking it is a whole number of GiB from 1 to 64 Ti. */
export function sizeBytes(sizeGiB: number): number {
  if (!Number.isSafeInteger(sizeGiB) || sizeGiB < 1 || sizeGiB > MAX_SIZE_GIB) throw new StorageError("InvalidArgument", `a volume size is a whole number of GiB from 1 to ${MAX_SIZE_GIB}, not ${sizeGiB}`);
  return sizeGiB * GIB;
}

/** A store's root: an absolute path of plain segments, not "/" itself. */
export function checkRoot(root: string): string {
  if (!isPlainAbsolutePath(root) || root === "/") throw new Error(`a storage root must be an absolute path of plain segments below /: ${JSON.stringify(root)}`);
  return root;
}

/** `root` joined with `segments`, asserted to lie strictly below `root` (a bug, never a request, could break this). */
export function below(root: string, ...segments: string[]): string {
  const path = posix.join(root, ...segments);
  if (!isBelow(path, root)) throw new Error(`storage path ${path} escapes ${root}`);
  return path;
}

/** Directories as configured and with their symlinks followed (resolved once: they are the operator's). */
export interface DirSet {
  given: readonly string[];
  resolved: readonly string[];
}

/**
 * Checks a path a caller hands in, `resolved` being it with every symlink
 * followed: InvalidArgument unless it lies below one of `allowed` (as
 * given, and once resolved below one of them resolved) and inside none of
 * `forbidden` (in either form). Returns the resolved path, which is what
 * the store then uses, so a symlink swapped in later cannot redirect it.
 */
export function checkCallerPath(what: string, path: string, resolved: string, allowed: DirSet, forbidden: DirSet): string {
  if (!isPlainAbsolutePath(path)) throw new StorageError("InvalidArgument", `${what} must be an absolute path of plain segments: ${JSON.stringify(path.slice(0, 200))}`);
  if (!allowed.given.some((d) => isBelow(path, d)) || !allowed.resolved.some((d) => isBelow(resolved, d))) {
    throw new StorageError("InvalidArgument", `${what} ${path} is not below ${allowed.given.join(", ") || "any allowed directory"}`);
  }
  const inside = (p: string, d: string) => p === d || isBelow(p, d);
  if ([...forbidden.given, ...forbidden.resolved].some((d) => inside(path, d) || inside(resolved, d))) throw new StorageError("InvalidArgument", `${what} ${path} is inside a store's own directory`);
  return resolved;
}
