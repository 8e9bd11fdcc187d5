// Which host paths may serve as images: one rule for the control plane's
// RegisterImage and the agent's check at launch, so the two never disagree.
import { posix } from "node:path";

/** An absolute path of plain segments (no "." or ".." segment, no empty one, no trailing slash but for "/"). */
export function isPlainAbsolutePath(path: string): boolean {
  if (!path.startsWith("/") || path.length > 1024) return false;
  return path === "/" || path.slice(1).split("/").every((s) => s !== "" && s !== "." && s !== ".." && /^[A-Za-z0-9._+@=-]+$/.test(s));
}

/**
 * The directories of a comma-separated list, each an absolute plain path.
 * Throws naming the first entry that is not one.
 */
export function parseDirList(text: string): string[] {
  const dirs = text.split(",").map((d) => d.trim()).filter((d) => d !== "");
  for (const d of dirs) if (!isPlainAbsolutePath(d)) throw new Error(`not an absolute directory path of plain segments: ${JSON.stringify(d.slice(0, 200))}`);
  return dirs;
}

/** What is wrong with a directory list for parseDirList (also: it names none), or undefined when nothing is; for configuration schemas. */
export function dirListProblem(text: string): string | undefined {
  try {
    return parseDirList(text).length > 0 ? undefined : "no directory given";
  } catch (err) {
    return (err as Error).message;
  }
}

/** Whether plain absolute `path` lies strictly below directory `dir` (a path-segment prefix, never a string prefix: /images2 is not below /images). */
export function isBelow(path: string, dir: string): boolean {
  const prefix = dir === "/" ? "/" : `${posix.normalize(dir)}/`;
  return path.length > prefix.length && path.startsWith(prefix);
}

/**
 * Why `resolved` (a path with every symlink followed) may not be an image
 * file, or undefined when it may: it must lie below one of `imageDirs` and
 * below none of `privateDirs` (where instances' disks and an agent's
 * secrets live). Both lists are compared as given; callers resolve their
 * symlinks too.
 */
export function imagePathRefusal(resolved: string, imageDirs: readonly string[], privateDirs: readonly string[] = []): string | undefined {
  if (!imageDirs.some((d) => isBelow(resolved, d))) return `it is not below an image directory (${imageDirs.join(", ") || "none configured"})`;
  if (privateDirs.some((d) => resolved === d || isBelow(resolved, d))) return "it is inside a directory that holds instances' disks or an agent's state";
  return undefined;
}
