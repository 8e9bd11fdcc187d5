// CopySnapshot on one region's store: the source exported to a plain file
// in the transfer directory and imported as the new snapshot, which so
// depends on no other snapshot (deleting the source never affects it). A
// cross-region copy would move the same file between the regions' stores.
import { posix } from "node:path";
import { removeHostFiles } from "../runner/host-files.js";
import type { CommandRunner } from "../runner/types.js";
import { ensureDirs } from "./host-fs.js";
import { checkSnapshotId } from "./paths.js";
import type { SnapshotInfo, SnapshotStore } from "./types.js";

/**
 * Postcondition: snapshot `snapshotId` exists, standalone, reading as
 * `sourceId` does, and the transfer file is gone. Crash-idempotent: the
 * file is named for the new snapshot, so a retry finds its predecessor's
 * (export takes an existing file with the same content as a retry, and
 * writes under a temporary name, so a file under the final name is
 * whole); an existing snapshot is returned as it is. Callers serialize
 * calls for the same `snapshotId`.
 */
export async function copySnapshot(store: SnapshotStore, runner: CommandRunner, transferDir: string, sourceId: string, snapshotId: string): Promise<SnapshotInfo> {
  checkSnapshotId(sourceId);
  const file = posix.join(transferDir, `${checkSnapshotId(snapshotId)}.qcow2`);
  const existing = await store.describe(snapshotId);
  if (existing) {
    // A retry after the import: only the file may be left.
    await removeHostFiles(runner, [file]);
    return existing;
  }
  // 0700: the file holds a volume's data.
  await ensureDirs(runner, [[transferDir, 0o700]]);
  await store.exportSnapshot(sourceId, file, "qcow2");
  const info = await store.importSnapshot(snapshotId, file, "qcow2");
  await removeHostFiles(runner, [file]);
  return info;
}
