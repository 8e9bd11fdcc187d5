// The directory backend: a zone's volumes as qcow2 files in a directory
// that every host of the zone mounts at the same path (NFS in a cluster),
// and the region's snapshots in another such directory, mounted by every
// host of the region (directory-snapshots.ts). The same filesystem may hold
// both.
//
// Layout (directories 0711: QEMU's user traverses them to open a disk and
// its backing chain, no other user lists them; files 0600, libvirt hands
// them to QEMU's user at attach; locks 0700):
//   <zone>/volumes/vol-….qcow2         a volume (.tmp while being made)
//   <zone>/volumes/vol-….snap-….live.qcow2
//                                      while a live snapshot reads the volume's
//                                      file: the overlay the guest writes
//                                      (made by libvirt, merged back and
//                                      removed by the driver)
//   <zone>/locks/vol-….lock            a host working on that volume
//   <region>/snapshots/snap-….qcow2    a snapshot's data (.tmp while taken)
//   <region>/catalog.json              the snapshots' records (catalog.ts)
//   <region>/locks/{snap-…,catalog}.lock
//
// The chain. A snapshot is a qcow2 file holding only the clusters that
// differ from the volume's previous snapshot, which is its backing file
// (relative name, in the same directory), so each snapshot reads as the
// whole volume did and stores only the change. It is computed without the
// volume ever depending on it: a temporary overlay over the volume (or the
// point-in-time image the driver hands over) is rebased onto the previous
// snapshot, and qemu-img's safe rebase writes into it just the clusters
// that read differently; with no previous snapshot, the snapshot is a
// plain `qemu-img convert` copy of it (the same file, in half the time).
// The alternative, freezing the volume's file as
// the snapshot and continuing the volume in an overlay over it, costs
// nothing at snapshot time but makes every volume a growing chain of
// snapshot files it depends on, which the issue rules out (and which the
// live path could not shorten without a block job per snapshot).
//
// A volume made from a snapshot is an overlay whose backing file is the
// snapshot's file (absolute path): available at once whatever its size,
// reading the snapshot's data in place until it writes. Its first snapshot
// is diffed against that snapshot, and qemu-img then compares only what
// the overlay holds, so it costs what the volume changed.
//
// Deleting a snapshot keeps every other snapshot and every volume reading
// as before, because a path's content never changes while anything can
// read it:
// - A snapshot that a volume reads through (the one it was made from, or
//   any ancestor of that one) is only marked deleted, and its file kept
//   until the last such volume is deleted. Merging its data into the
//   volumes instead would copy the whole snapshot into each of them, and
//   write into files running guests hold (QEMU's locks refuse that).
// - Otherwise its data is folded into its children: a leaf is removed; a
//   snapshot with one child smaller than itself takes the child's clusters
//   (qemu-img commit) and is renamed over it, which costs the child's size
//   (deleting the oldest snapshot, the usual retention, costs the size of
//   the next one's change, not the volume's); otherwise each child is
//   rebased onto the grandparent (costing the deleted layer's size). The
//   fold is recorded before it starts; directory-snapshots.ts says how a
//   crashed one is finished.
// So no volume ever keeps depending on a file that a delete removes, and a
// snapshot's chain is never longer than the snapshots still held.
//
// Two hosts. Each id has a lock (lock.ts: a symlink made with O_EXCL
// semantics, renewed, taken over when its holder stops renewing), taken in
// one order: volume, then snapshot, then the catalog's. Holding an id's lock
// is also what makes temporary names safe: only the holder writes
// `<id>.qcow2.tmp`, so a holder that finds one knows it was left by a
// crashed attempt and starts it again. The catalog's lock is held only for
// record changes and folds; long copies (taking a snapshot, exporting) run
// outside it, their base pinned in the catalog so no fold touches it.
// QEMU's image locks (on NFS, its locks span hosts) keep a data operation
// off a file a guest writes, and a fold off a chain someone reads.
//
// Encryption is not implemented: create() with `encrypted` is refused with
// Unsupported. It needs each layer of a chain opened with its own secret
// (qcow2 LUKS, `--object secret` per layer), in qemu-img here and in the
// domain's disk XML at attach.
import { hostFileIdentities, hostPathExists, moveHostFile, removeHostFiles, resolveHostPaths, setHostFileMode } from "../runner/host-files.js";
import type { CommandRunner } from "../runner/types.js";
import { tuned, type DirectorySnapshotStore, type StoreTuning } from "./directory-snapshots.js";
import { ensureStoreDirs, listNames, sharedUntilFailure } from "./host-fs.js";
import { LockDir, type Lease } from "./lock.js";
import { below, checkCallerPath, checkRoot, checkSnapshotId, checkVolumeId, sizeBytes } from "./paths.js";
import { QemuImg } from "./qemu-img.js";
import { StorageError, type CheckResult, type CreateVolumeOptions, type FileVolumeStore, type SnapshotInfo, type VolumeInfo } from "./types.js";

export interface DirectoryVolumeStoreOptions extends StoreTuning {
  runner: CommandRunner;
  /** The zone's volume directory, mounted at this same path by every host of the zone. */
  root: string;
  /** Who this store is in lock files: the host id. */
  owner: string;
  /** The region's snapshots, which volumes are snapshotted into and made from. */
  snapshots: DirectorySnapshotStore;
}

const VOLUME_FILE = /^vol-[0-9a-f]{17}\.qcow2$/;
const LIVE_OVERLAY = /^vol-[0-9a-f]{17}\.snap-[0-9a-f]{17}\.live\.qcow2$/;

export class DirectoryVolumeStore implements FileVolumeStore {
  private readonly root: string;
  private readonly dir: string;
  private readonly qemu: QemuImg;
  private readonly locks: LockDir;
  private readonly ensureDirs = sharedUntilFailure(() => ensureStoreDirs(this.opts.runner, this.root, this.dir, this.locks.dir));
  private resolvedRoot?: Promise<string>;

  constructor(private readonly opts: DirectoryVolumeStoreOptions) {
    this.root = checkRoot(opts.root);
    this.dir = below(this.root, "volumes");
    const t = tuned(opts);
    this.qemu = new QemuImg(opts.runner, t.dataTimeoutMs);
    this.locks = new LockDir(opts.runner, below(this.root, "locks"), { owner: opts.owner, staleMs: t.staleMs, waitMs: t.waitMs });
  }

  async create(volumeId: string, sizeGiB: number, opts: CreateVolumeOptions = {}): Promise<void> {
    checkVolumeId(volumeId);
    const size = sizeBytes(sizeGiB);
    if (opts.encrypted) throw new StorageError("Unsupported", "encrypted volumes are not implemented by the directory store yet");
    await this.withVolume(volumeId, async (lease, file) => {
      if (await hostPathExists(this.opts.runner, file)) return;
      await this.makeFile(lease, file, (tmp) => this.qemu.create(tmp, { sizeBytes: size }));
    });
  }

  async createFromSnapshot(volumeId: string, snapshotId: string, sizeGiB: number): Promise<void> {
    checkVolumeId(volumeId);
    checkSnapshotId(snapshotId);
    const size = sizeBytes(sizeGiB);
    await this.withVolume(volumeId, async (lease, file) => {
      if (await hostPathExists(this.opts.runner, file)) return;
      // Pinned before the file exists: a crash in between leaves a pin without a volume, which the retry or delete() settles.
      const backing = await this.opts.snapshots.pin(volumeId, snapshotId, size);
      await this.makeFile(lease, file, (tmp) => this.qemu.create(tmp, { backing, sizeBytes: size }));
    });
  }

  async resize(volumeId: string, sizeGiB: number): Promise<void> {
    checkVolumeId(volumeId);
    const size = sizeBytes(sizeGiB);
    await this.withVolume(volumeId, async (_lease, file) => {
      if (!(await hostPathExists(this.opts.runner, file))) throw new StorageError("NotFound", `volume ${volumeId} does not exist`);
      // Without --force-share: InUse when a guest has it open.
      const { virtualSize } = await this.qemu.info(file, "qcow2");
      if (virtualSize === size) return;
      if (virtualSize > size) throw new StorageError("InvalidArgument", `volume ${volumeId} is ${virtualSize / 1024 ** 3} GiB; a volume can only grow`);
      await this.qemu.grow(file, size);
    });
  }

  async delete(volumeId: string): Promise<void> {
    checkVolumeId(volumeId);
    await this.withVolume(volumeId, async (_lease, file) => {
      if (await hostPathExists(this.opts.runner, file)) {
        try {
          await this.qemu.info(file, "qcow2");
        } catch (err) {
          // Only a guest holding it stops a delete; a file qemu-img cannot read still goes.
          if (err instanceof StorageError) throw err;
        }
      }
      await removeHostFiles(this.opts.runner, [file, `${file}.tmp`]);
      await this.opts.snapshots.release(volumeId);
    });
  }

  snapshot(volumeId: string, snapshotId: string): Promise<SnapshotInfo> {
    checkVolumeId(volumeId);
    return this.take(volumeId, snapshotId, this.volumePath(volumeId));
  }

  async snapshotFrom(volumeId: string, snapshotId: string, image: string): Promise<SnapshotInfo> {
    checkVolumeId(volumeId);
    this.resolvedRoot ??= resolveHostPaths(this.opts.runner, [this.root]).then(
      ([r]) => r!,
      (err: unknown) => {
        this.resolvedRoot = undefined;
        throw err;
      },
    );
    const root = await this.resolvedRoot;
    const [resolved] = await resolveHostPaths(this.opts.runner, [image]);
    const path = checkCallerPath("image", image, resolved!, { given: [this.root], resolved: [root] }, { given: [], resolved: [] });
    if ((await hostFileIdentities(this.opts.runner, [path]))[0] === undefined) throw new StorageError("InvalidArgument", `image ${image} is not a file`);
    return this.take(volumeId, snapshotId, path);
  }

  async describe(volumeId: string): Promise<VolumeInfo | undefined> {
    const file = this.volumePath(volumeId);
    if (!(await hostPathExists(this.opts.runner, file))) return undefined;
    // --force-share: the header of an attached volume is readable; only its data is in flux.
    const info = await this.qemu.info(file, "qcow2", true);
    return { volumeId, sizeBytes: info.virtualSize, storedBytes: info.actualSize, disk: { kind: "file", path: file, format: "qcow2" } };
  }

  /**
   * Beside the volume (QEMU reaches it as it does the volume, through the
   * same 0711 directories), named for the snapshot, so a retry of the live
   * snapshot finds its own overlay and tells another's apart.
   */
  liveOverlayPath(volumeId: string, snapshotId: string): string {
    return below(this.dir, `${checkVolumeId(volumeId)}.${checkSnapshotId(snapshotId)}.live.qcow2`);
  }

  async check(): Promise<CheckResult[]> {
    await this.ensureDirs();
    const names = (await listNames(this.opts.runner, this.dir)).sort();
    const results: CheckResult[] = [];
    for (const name of names.filter((n) => VOLUME_FILE.test(n))) results.push(await this.qemu.check(below(this.dir, name)));
    for (const name of names.filter((n) => LIVE_OVERLAY.test(n))) {
      const path = below(this.dir, name);
      const result = await this.qemu.check(path);
      // Held by a guest: a live snapshot in progress. Otherwise a crash left it between the merge back and its removal (or mid-snapshot on a domain since removed): its data is the guest's writes of that time.
      results.push(result.status === "in-use" ? result : { path, status: "inconsistent", detail: `a live snapshot's overlay nobody holds (qemu-img check: ${result.status})` });
    }
    return results;
  }

  /** Snapshot `snapshotId` of the volume from `image`, which nobody may be writing (QEMU's lock refuses the read with InUse otherwise). */
  private async take(volumeId: string, snapshotId: string, image: string): Promise<SnapshotInfo> {
    checkSnapshotId(snapshotId);
    return this.withVolume(volumeId, async (_lease, file) => {
      if (!(await hostPathExists(this.opts.runner, file))) throw new StorageError("NotFound", `volume ${volumeId} does not exist`);
      // Before anything is recorded: a guest writing the image makes this InUse.
      await this.qemu.info(image, "qcow2");
      return this.opts.snapshots.capture(snapshotId, volumeId, image);
    });
  }

  private async withVolume<T>(volumeId: string, fn: (lease: Lease, file: string) => Promise<T>): Promise<T> {
    const file = this.volumePath(volumeId);
    await this.ensureDirs();
    return this.locks.withLock(volumeId, (lease) => fn(lease, file));
  }

  /** Makes `file` with `make(tmp)` under its temporary name (a leftover one is a crashed attempt's, made again), then renames it into place. */
  private async makeFile(lease: Lease, file: string, make: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = `${file}.tmp`;
    await removeHostFiles(this.opts.runner, [tmp]);
    await make(tmp);
    await setHostFileMode(this.opts.runner, tmp, 0o600);
    await lease.assertHeld();
    await moveHostFile(this.opts.runner, tmp, file);
  }

  private volumePath(volumeId: string): string {
    return below(this.dir, `${checkVolumeId(volumeId)}.qcow2`);
  }

}
