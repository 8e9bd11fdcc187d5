// The block-storage boundary: where EBS volumes and their snapshots live.
// Two interfaces with written postconditions, as the hypervisor driver has
// one: a VolumeStore per availability zone (volumes are zonal, as in EC2)
// and a SnapshotStore per region (snapshots are regional: a volume in any
// zone of the region can be made from one). A backend implements both
// halves together, because a volume made from a snapshot is copy-on-write
// over the snapshot's data and so has to be able to read it in place: the
// directory backend (directory.ts) over files, a Ceph backend over RBD
// clones (docs/ARCHITECTURE.md, "Block storage").
//
// Rules every method of both interfaces follows:
// - Idempotent by id. A call repeated after it succeeded changes nothing;
//   a call repeated after a crash part-way (of the agent, the host or the
//   command) finishes the work or redoes it, and never leaves two copies or
//   a half-written file under a final name. Each method says how it
//   recognises a half-done predecessor.
// - Ids are checked (`^vol-[0-9a-f]{17}$`, `^snap-[0-9a-f]{17}$`) before
//   anything is touched, and every path a store writes or removes is its own:
//   built from its root and a checked id, and asserted to stay below the
//   root. A store never removes a file it did not create.
// - Callers (the control plane, through the agent) keep the EC2 state
//   machine and never reuse an id: a snapshot or volume id that was deleted
//   is not asked for again.
// - Errors are StorageError when the request can never succeed as asked or
//   the volume is busy; any other error is transient (disk, SSH, a crash of
//   qemu-img) and the caller retries the same call.

/** Why a storage call failed in a way a retry of the same call will not fix (but "Busy", which a later retry may). */
export type StorageErrorKind =
  /** A malformed id, a size out of range, a path outside the allowed directories, a shrink. */
  | "InvalidArgument"
  /** The volume or snapshot does not exist (or was deleted). */
  | "NotFound"
  /** A process (a running guest, another qemu-img) holds the image in a way the operation cannot share: QEMU's image lock said so. */
  | "InUse"
  /** Another host holds the id's lock for longer than the wait allowed, or took it over: retry later. */
  | "Busy"
  /** The id is taken by something made from a different request. */
  | "Conflict"
  /** Asked for something this backend does not do (yet). */
  | "Unsupported"
  /** A file to import is not a usable image of the stated format, or refers to other files. */
  | "InvalidImage";

export class StorageError extends Error {
  constructor(
    readonly kind: StorageErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "StorageError";
  }
}

/**
 * The key of an encrypted volume: an id of a key the control plane holds
 * (one per volume), handed to libvirt as a secret at attach.
 */
export interface VolumeKey {
  keyId: string;
}

export interface CreateVolumeOptions {
  /** Encrypt the volume on disk with this key (qcow2 LUKS). */
  encrypted?: VolumeKey;
}

/** What the hypervisor driver attaches: a file today; a Ceph backend would add `{ kind: "rbd", pool, image }` (a libvirt network disk). */
export interface DiskSource {
  kind: "file";
  path: string;
  format: "qcow2";
}

export interface VolumeInfo {
  volumeId: string;
  /** The size the guest sees. */
  sizeBytes: number;
  /** Bytes the volume's own file takes on the store (not counting the snapshot data it reads through). */
  storedBytes: number;
  disk: DiskSource;
}

export interface SnapshotInfo {
  snapshotId: string;
  /** The volume it was taken of; undefined for an imported snapshot. */
  volumeId: string | undefined;
  /** The size of the volume it was taken of: the smallest volume that can be made from it. */
  sizeBytes: number;
  /** Bytes this snapshot's own data takes (for an incremental snapshot: what changed since the previous one, plus metadata). */
  storedBytes: number;
}

/** A plain image file's format, for export and import. */
export type ImageFormat = "qcow2" | "raw";

/** What `check()` found about one file a store owns. */
export interface CheckResult {
  path: string;
  /**
   * clean: `qemu-img check` found nothing. leaks: clusters allocated but
   * unused (left by a crash mid-write; wasted space, not damage). corrupt:
   * qemu-img found corruption. in-use: a running guest holds it, so it was
   * not checked (a check of an image being written reports phantom errors).
   * inconsistent: the file disagrees with the store's records (a missing
   * file, an unknown one, a backing file other than recorded). error: the
   * check itself failed.
   */
  status: "clean" | "leaks" | "corrupt" | "in-use" | "inconsistent" | "error";
  detail?: string;
}

/**
 * The volumes of one availability zone. Every method may run on any host
 * of the zone (they share the store); two hosts working on the same id
 * are serialized by the store itself.
 */
export interface VolumeStore {
  /**
   * Postcondition: volume `volumeId` exists, `sizeGiB` GiB, reading as
   * zeros. An existing volume is left as it is (a retried create). Made
   * under a temporary name and renamed into place, so a crash leaves
   * either nothing under the final name or a whole volume; a retry finds
   * the temporary file (only the holder of the volume's lock writes it)
   * and starts again. `opts.encrypted`: see the backend (the directory
   * backend refuses it with Unsupported for now).
   */
  create(volumeId: string, sizeGiB: number, opts?: CreateVolumeOptions): Promise<void>;

  /**
   * Postcondition: volume `volumeId` exists, `sizeGiB` GiB (at least the
   * snapshot's size, else InvalidArgument), reading as the snapshot
   * did, beyond it zeros. Available at once whatever the size: the volume
   * is copy-on-write over the snapshot's data, which it reads in place
   * until written. Deleting the snapshot afterwards never changes or
   * breaks the volume: the store keeps whatever data the volume still
   * reads until the volume is deleted. NotFound when the snapshot does not
   * exist or was deleted. Idempotent as create (an existing volume is left
   * as it is; a temporary file is made again).
   */
  createFromSnapshot(volumeId: string, snapshotId: string, sizeGiB: number): Promise<void>;

  /**
   * Postcondition: the volume is `sizeGiB` GiB, its data kept, the new
   * part reading as zeros. Grow only, as EC2: a smaller size is
   * InvalidArgument, the same size a no-op (which is how a retry after a
   * crash mid-way is recognised: the size either changed or did not).
   * Offline only (InUse while a guest has it open): a live resize is the
   * driver's (`virsh blockresize`). NotFound when there is no volume.
   */
  resize(volumeId: string, sizeGiB: number): Promise<void>;

  /**
   * Postcondition: the volume's data is gone and its id unknown; the
   * snapshots taken of it are untouched (they are independent of it), and
   * whatever snapshot data only it still read is released. No volume: a
   * no-op. InUse while a guest has it open.
   */
  delete(volumeId: string): Promise<void>;

  /**
   * Takes snapshot `snapshotId` of the volume as it is now. Offline: the
   * volume must not be open for writing by anyone (InUse otherwise, as
   * QEMU's image lock says); see snapshotFrom for an attached one.
   * Postcondition: as snapshotFrom with the volume's own file.
   */
  snapshot(volumeId: string, snapshotId: string): Promise<SnapshotInfo>;

  /**
   * Takes snapshot `snapshotId` of volume `volumeId` from `image`, a qcow2
   * file on the store holding the volume's content at the snapshot's point
   * in time, which nobody writes while this runs. The store only reads it.
   *
   * The live path (a volume attached to a running guest) will use this:
   * the driver freezes the volume's file without stopping the guest, with
   * a libvirt external disk-only snapshot (`--no-metadata`, after a
   * guest-agent fsfreeze when the image has an agent) whose overlay takes
   * the guest's writes. The volume's own file is then `image`: QEMU holds
   * it only as a read-only backing file, so the store may read it. When
   * this returns, the driver merges the overlay back and pivots
   * (`virsh blockcommit --active --pivot`), so the guest never keeps
   * depending on a file made for the snapshot. A libvirt push backup
   * (`backup-begin`) writing a point-in-time copy into a file below the
   * store's root would serve as `image` as well.
   *
   * Postcondition: the snapshot exists, reads as `image` did, and stores
   * only what differs from the volume's previous snapshot (which it reads
   * through); deleting any other snapshot later, earlier or later in the
   * chain, never breaks it. Made under a temporary name and renamed into
   * place; the store records the snapshot as "creating" first, so a retry
   * after a crash either finds it renamed (and only records it as done)
   * or discards the temporary file and takes it again from `image` (so the
   * caller hands the same point in time to a retry). An existing snapshot
   * with that id is a no-op, taken of another volume a Conflict.
   * NotFound when there is no volume; InvalidArgument when `image` is not
   * a file below the store's root.
   */
  snapshotFrom(volumeId: string, snapshotId: string, image: string): Promise<SnapshotInfo>;

  /** The volume's size and where its data is, or undefined when it does not exist. */
  describe(volumeId: string): Promise<VolumeInfo | undefined>;

  /** `qemu-img check` of every volume file the store holds (a running guest's is reported in-use, not checked). */
  check(): Promise<CheckResult[]>;
}

/**
 * A VolumeStore whose volumes are files QEMU opens itself, so the driver
 * can take a live snapshot by freezing one behind an overlay.
 */
export interface FileVolumeStore extends VolumeStore {
  /**
   * A path below the store's root, made for the volume and the snapshot,
   * where the driver's live snapshot puts the overlay that takes the
   * guest's writes while the volume's file is read (snapshotFrom). The
   * store neither makes nor removes it; check() reports one left behind.
   */
  liveOverlayPath(volumeId: string, snapshotId: string): string;
}

/**
 * The snapshots of one region. Made by a VolumeStore (snapshot,
 * snapshotFrom) or by import; everything else is here.
 */
export interface SnapshotStore {
  /** The snapshot, or undefined when it does not exist, is not complete yet, or was deleted. */
  describe(snapshotId: string): Promise<SnapshotInfo | undefined>;

  /**
   * Postcondition: the snapshot is gone for every caller (describe,
   * createFromSnapshot, export answer as for an unknown id) and every
   * other snapshot and volume reads exactly as before. Its data is
   * released once nothing needs it: at once when no later snapshot and no
   * volume reads through it, otherwise merged into the snapshot that does,
   * or kept until the volumes made from it are deleted. A snapshot still
   * being taken is abandoned (its partial data removed). Unknown id: a
   * no-op. A merge is recorded before it starts; one a crash interrupted
   * is finished by the next delete or snapshot.
   */
  deleteSnapshot(snapshotId: string): Promise<void>;

  /**
   * Postcondition: `file` is a standalone image (no backing file) of
   * `format` holding the snapshot's content (mode 0600), for CopySnapshot
   * or CreateImage. Written under a temporary name beside it and renamed;
   * when `file` already exists it is compared with the snapshot: the same
   * content is a no-op (a retry), different content a Conflict (a store
   * never replaces a file it did not create). `file` must lie below one
   * of the store's transfer directories (InvalidArgument otherwise).
   */
  exportSnapshot(snapshotId: string, file: string, format: ImageFormat): Promise<void>;

  /**
   * Postcondition: snapshot `snapshotId` exists, standalone (it depends on
   * no other snapshot), reading as `file` does. `file` lies below a
   * transfer directory and is an image of `format` that refers to no
   * other file (a backing or external data file would let an import read
   * any file on the host): InvalidImage otherwise. Recorded, made and
   * recovered as snapshotFrom; an existing snapshot with the id is a no-op.
   */
  importSnapshot(snapshotId: string, file: string, format: ImageFormat): Promise<SnapshotInfo>;

  /** `qemu-img check` of every snapshot file, and whether the files agree with the store's records. */
  check(): Promise<CheckResult[]>;
}
