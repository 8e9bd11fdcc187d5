// Block storage in memory for server tests: the stores' contract in
// outline (ids and sizes checked as the real ones do), a record of which
// path each snapshot was taken from, and StorageErrors injected per id.
import type { HostStorage } from "../src/server.js";
import { checkSnapshotId, checkVolumeId, sizeBytes } from "../src/storage/paths.js";
import { StorageError, type CheckResult, type FileVolumeStore, type SnapshotInfo, type SnapshotStore, type VolumeInfo } from "../src/storage/types.js";

export class MemoryStorage implements HostStorage {
  readonly sizes = new Map<string, number>();
  readonly taken = new Map<string, SnapshotInfo & { from: string }>();
  /** Volumes a "guest" holds: an offline snapshot, resize or delete is InUse. */
  readonly inUse = new Set<string>();
  /** The next call naming this id fails with this error. */
  readonly failNext = new Map<string, StorageError>();

  readonly volumes: FileVolumeStore = {
    create: async (volumeId, sizeGiB) => {
      this.trip(checkVolumeId(volumeId));
      if (!this.sizes.has(volumeId)) this.sizes.set(volumeId, sizeBytes(sizeGiB));
    },
    createFromSnapshot: async (volumeId, snapshotId, sizeGiB) => {
      this.trip(checkVolumeId(volumeId));
      if (!this.taken.has(checkSnapshotId(snapshotId))) throw new StorageError("NotFound", `snapshot ${snapshotId} does not exist`);
      this.sizes.set(volumeId, sizeBytes(sizeGiB));
    },
    resize: async (volumeId, sizeGiB) => {
      this.trip(checkVolumeId(volumeId));
      const size = sizeBytes(sizeGiB);
      const now = this.sizes.get(volumeId);
      if (now === undefined) throw new StorageError("NotFound", `volume ${volumeId} does not exist`);
      if (this.inUse.has(volumeId)) throw new StorageError("InUse", `${volumeId} is held`);
      if (now > size) throw new StorageError("InvalidArgument", `volume ${volumeId} can only grow`);
      this.sizes.set(volumeId, size);
    },
    delete: async (volumeId) => {
      this.trip(checkVolumeId(volumeId));
      if (this.inUse.has(volumeId)) throw new StorageError("InUse", `${volumeId} is held`);
      this.sizes.delete(volumeId);
    },
    snapshot: (volumeId, snapshotId) => {
      if (this.inUse.has(volumeId)) return Promise.reject(new StorageError("InUse", `${volumeId} is held`));
      return this.take(volumeId, snapshotId, this.path(volumeId));
    },
    snapshotFrom: (volumeId, snapshotId, image) => this.take(volumeId, snapshotId, image),
    describe: async (volumeId): Promise<VolumeInfo | undefined> => {
      const size = this.sizes.get(checkVolumeId(volumeId));
      return size === undefined ? undefined : { volumeId, sizeBytes: size, storedBytes: 0, disk: { kind: "file", path: this.path(volumeId), format: "qcow2" } };
    },
    check: async (): Promise<CheckResult[]> => [],
    liveOverlayPath: (volumeId, snapshotId) => `/store/volumes/${volumeId}.${snapshotId}.live.qcow2`,
  };

  readonly snapshots: SnapshotStore = {
    describe: async (snapshotId) => {
      const s = this.taken.get(checkSnapshotId(snapshotId));
      return s && { snapshotId, volumeId: s.volumeId, sizeBytes: s.sizeBytes, storedBytes: s.storedBytes };
    },
    deleteSnapshot: async (snapshotId) => {
      this.trip(checkSnapshotId(snapshotId));
      this.taken.delete(snapshotId);
    },
    exportSnapshot: async () => undefined,
    importSnapshot: async () => {
      throw new StorageError("Unsupported", "not in memory");
    },
    check: async () => [],
  };

  async copySnapshot(sourceId: string, snapshotId: string): Promise<SnapshotInfo> {
    this.trip(snapshotId);
    const source = this.taken.get(sourceId);
    if (!source) throw new StorageError("NotFound", `snapshot ${sourceId} does not exist`);
    const copy = { ...source, snapshotId, volumeId: undefined, from: `copy of ${sourceId}` };
    this.taken.set(snapshotId, copy);
    return copy;
  }

  path(volumeId: string): string {
    return `/store/volumes/${volumeId}.qcow2`;
  }

  private async take(volumeId: string, snapshotId: string, from: string): Promise<SnapshotInfo> {
    this.trip(checkSnapshotId(snapshotId));
    const size = this.sizes.get(volumeId);
    if (size === undefined) throw new StorageError("NotFound", `volume ${volumeId} does not exist`);
    const info = { snapshotId, volumeId, sizeBytes: size, storedBytes: 0 };
    this.taken.set(snapshotId, { ...info, from });
    return info;
  }

  private trip(id: string): void {
    const err = this.failNext.get(id);
    if (!err) return;
    this.failNext.delete(id);
    throw err;
  }
}
