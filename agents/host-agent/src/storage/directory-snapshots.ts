// The directory backend's snapshot half: a region's snapshots as a forest
// of qcow2 files, each holding what changed since its parent (its backing
// file). The design, and why, is in directory.ts; the records and the
// decisions taken from them are in catalog.ts.
import type { Logger } from "@cirrus/common";
import { hostPathExists, moveHostFile, readHostFile, removeHostFiles, resolveHostPaths, setHostFileMode } from "../runner/host-files.js";
import { CommandError, type CommandRunner } from "../runner/types.js";
import { ancestry, childrenOf, diffBase, dropLayer, emptyCatalog, nextToCollect, parseCatalog, type Catalog } from "./catalog.js";
import { ensureStoreDirs, listNames, sharedUntilFailure, writePrivateFile } from "./host-fs.js";
import { LockDir, type Lease } from "./lock.js";
import { below, checkCallerPath, checkRoot, checkSnapshotId, isSnapshotId, type DirSet } from "./paths.js";
import { QemuImg } from "./qemu-img.js";
import { StorageError, type CheckResult, type ImageFormat, type SnapshotInfo, type SnapshotStore } from "./types.js";

export interface StoreTuning {
  /** How long a host's lock may go unrenewed before another host takes it over (default 60 s). */
  lockStaleMs?: number;
  /** How long to wait for a lock before answering Busy (default 150 s: past a dead holder's staleness). */
  lockWaitMs?: number;
  /** Limit for one data-copying command (default 6 h). */
  dataTimeoutMs?: number;
}

export interface DirectorySnapshotStoreOptions extends StoreTuning {
  runner: CommandRunner;
  /** The region's snapshot directory, mounted at this same path by every host of the region. */
  root: string;
  /** Who this store is in lock files: the host id. */
  owner: string;
  /** The only directories export may write to and import read from. */
  transferDirs: readonly string[];
  /** Directories export and import never touch besides this store's own: the zones' volume directories, the agent's state. */
  privateDirs?: readonly string[];
  log: Logger;
}

/** One change of the catalog, under the store's lock. */
interface Transaction {
  catalog: Catalog;
  /** Writes the catalog as it is now (each step that must survive a crash saves). */
  save(): Promise<void>;
  lease: Lease;
}

const CATALOG_LOCK = "catalog";

export function tuned(opts: StoreTuning): { staleMs: number; waitMs: number; dataTimeoutMs: number } {
  return { staleMs: opts.lockStaleMs ?? 60_000, waitMs: opts.lockWaitMs ?? 150_000, dataTimeoutMs: opts.dataTimeoutMs ?? 6 * 3600_000 };
}

export class DirectorySnapshotStore implements SnapshotStore {
  private readonly root: string;
  private readonly dir: string;
  private readonly catalogPath: string;
  private readonly qemu: QemuImg;
  private readonly locks: LockDir;
  private readonly ensureDirs = sharedUntilFailure(() => ensureStoreDirs(this.opts.runner, this.root, this.dir, this.locks.dir));
  /** The transfer directories (allowed) and the store's own and private ones (forbidden), resolved once. */
  private readonly transferDirs = sharedUntilFailure(async (): Promise<{ allowed: DirSet; forbidden: DirSet }> => {
    const given = this.opts.transferDirs;
    const forbiddenGiven = [this.root, ...(this.opts.privateDirs ?? [])];
    const all = await resolveHostPaths(this.opts.runner, [...given, ...forbiddenGiven]);
    return { allowed: { given, resolved: all.slice(0, given.length) }, forbidden: { given: forbiddenGiven, resolved: all.slice(given.length) } };
  });

  constructor(private readonly opts: DirectorySnapshotStoreOptions) {
    this.root = checkRoot(opts.root);
    this.dir = below(this.root, "snapshots");
    this.catalogPath = below(this.root, "catalog.json");
    const t = tuned(opts);
    this.qemu = new QemuImg(opts.runner, t.dataTimeoutMs);
    this.locks = new LockDir(opts.runner, below(this.root, "locks"), { owner: opts.owner, staleMs: t.staleMs, waitMs: t.waitMs });
  }

  /** Where snapshot `id`'s data is (an absolute path, which volumes made from it name as their backing file). */
  private layerPath(id: string): string {
    return below(this.dir, `${checkSnapshotId(id)}.qcow2`);
  }

  async describe(snapshotId: string): Promise<SnapshotInfo | undefined> {
    checkSnapshotId(snapshotId);
    const layer = (await this.readCatalog()).layers[snapshotId];
    if (layer?.state !== "ready") return undefined;
    const info = await this.qemu.info(this.layerPath(snapshotId), "qcow2", true);
    return { snapshotId, volumeId: layer.volumeId ?? undefined, sizeBytes: layer.sizeBytes, storedBytes: info.actualSize };
  }

  /**
   * For the volume store (which holds the volume's lock): takes snapshot
   * `snapshotId` of `volumeId` from `image` (see VolumeStore.snapshotFrom).
   * A temporary qcow2 over `image` is rebased onto the volume's diff base
   * (catalog.ts, diffBase): safe rebase writes into it exactly the clusters
   * where `image` and the base read differently, so it ends as a layer
   * holding only the change, with the base as its backing file. Without a
   * base (a first snapshot, of a volume not made from one) the layer is a
   * standalone copy of `image` (`qemu-img convert`), which is what the
   * rebase would write too: the whole allocated content, no backing file.
   */
  capture(snapshotId: string, volumeId: string, image: string): Promise<SnapshotInfo> {
    return this.createLayer(snapshotId, volumeId, (c) => diffBase(c, volumeId), async (tmp, base) => {
      // convert keeps several requests in flight where safe rebase reads and compares cluster by cluster: about half the time (docs/benchmarks.md).
      if (base === null) return this.qemu.convert(image, "qcow2", tmp, "qcow2");
      await this.qemu.create(tmp, { backing: image });
      await this.qemu.rebase(tmp, base);
    });
  }

  /**
   * For the volume store: records that volume `volumeId` reads snapshot
   * `snapshotId` in place (from now until release), so neither it nor its
   * chain changes, and returns the file to use as the volume's backing.
   * NotFound unless the snapshot is complete and not deleted;
   * InvalidArgument (recording nothing) when it is larger than `sizeBytes`.
   */
  async pin(volumeId: string, snapshotId: string, sizeBytes: number): Promise<string> {
    checkSnapshotId(snapshotId);
    await this.ensureDirs();
    return this.transaction(async (tx) => {
      const layer = tx.catalog.layers[snapshotId];
      if (layer?.state !== "ready") throw new StorageError("NotFound", `snapshot ${snapshotId} does not exist`);
      if (layer.sizeBytes > sizeBytes) throw new StorageError("InvalidArgument", `a volume from ${snapshotId} needs at least ${Math.ceil(layer.sizeBytes / 1024 ** 3)} GiB`);
      if (tx.catalog.pins[volumeId] !== snapshotId) {
        tx.catalog.pins[volumeId] = snapshotId;
        await tx.save();
      }
      return this.layerPath(snapshotId);
    });
  }

  /** For the volume store, once volume `volumeId` is deleted: it reads nothing any more, and its next snapshot will not come. */
  async release(volumeId: string): Promise<void> {
    await this.ensureDirs();
    await this.transaction(async (tx) => {
      if (tx.catalog.pins[volumeId] !== undefined || tx.catalog.heads[volumeId] !== undefined) {
        delete tx.catalog.pins[volumeId];
        delete tx.catalog.heads[volumeId];
        await tx.save();
      }
      await this.collect(tx);
    });
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const file = this.layerPath(snapshotId);
    await this.ensureDirs();
    await this.locks.withLock(snapshotId, () =>
      this.transaction(async (tx) => {
        const layer = tx.catalog.layers[snapshotId];
        if (layer?.state === "creating") {
          // Nothing reads a snapshot before it is ready, so even a file renamed into place just before a crash can go.
          await removeHostFiles(this.opts.runner, [`${file}.tmp`, file]);
          delete tx.catalog.pins[snapshotId];
          delete tx.catalog.layers[snapshotId];
          await tx.save();
        } else if (layer?.state === "ready") {
          layer.state = "deleted";
          await tx.save();
        }
        await this.collect(tx);
      }),
    );
  }

  async exportSnapshot(snapshotId: string, file: string, format: ImageFormat): Promise<void> {
    checkSnapshotId(snapshotId);
    const dest = await this.transferPath("export file", file);
    if ((await this.readCatalog()).layers[snapshotId]?.state !== "ready") throw new StorageError("NotFound", `snapshot ${snapshotId} does not exist`);
    // No lock: QEMU's read locks keep a fold from writing into the chain while qemu-img reads it, and a fold never changes what a path reads.
    const src = this.layerPath(snapshotId);
    if (await hostPathExists(this.opts.runner, dest)) {
      if (await this.qemu.same(src, "qcow2", dest, format)) return;
      throw new StorageError("Conflict", `${file} exists and is not snapshot ${snapshotId}`);
    }
    const tmp = `${dest}.${snapshotId}.tmp`;
    try {
      await this.qemu.convert(src, "qcow2", tmp, format);
      await setHostFileMode(this.opts.runner, tmp, 0o600);
      await moveHostFile(this.opts.runner, tmp, dest);
    } catch (err) {
      await removeHostFiles(this.opts.runner, [tmp]).catch(() => undefined);
      throw err;
    }
  }

  async importSnapshot(snapshotId: string, file: string, format: ImageFormat): Promise<SnapshotInfo> {
    checkSnapshotId(snapshotId);
    const src = await this.transferPath("import file", file);
    // Checked before anything is recorded, so a refused file leaves no trace.
    let info;
    try {
      info = await this.qemu.info(src, format);
    } catch (err) {
      if (err instanceof CommandError) throw new StorageError("InvalidImage", `${file} is not a ${format} image: ${err.stderr.trim().slice(0, 300)}`);
      throw err;
    }
    if (info.backing !== undefined || info.dataFile !== undefined) throw new StorageError("InvalidImage", `${file} refers to another file (${info.backing ?? info.dataFile}); import a standalone image`);
    return this.createLayer(snapshotId, null, () => null, (tmp) => this.qemu.convert(src, format, tmp, "qcow2"));
  }

  async check(): Promise<CheckResult[]> {
    await this.ensureDirs();
    const catalog = await this.readCatalog();
    const results: CheckResult[] = [];
    try {
      for (const id of Object.keys(catalog.layers)) ancestry(catalog, id);
      for (const target of Object.values(catalog.pins)) ancestry(catalog, target);
    } catch (err) {
      results.push({ path: this.catalogPath, status: "inconsistent", detail: (err as Error).message });
    }
    const names = new Set(await listNames(this.opts.runner, this.dir));
    for (const name of [...names].sort()) {
      const id = name.slice(0, -".qcow2".length);
      if (!name.endsWith(".qcow2") || !isSnapshotId(id)) continue;
      const path = this.layerPath(id);
      const layer = catalog.layers[id];
      const result = await this.qemu.check(path);
      if (!layer) results.push({ path, status: "inconsistent", detail: "the catalog has no record of this file" });
      else if (result.status !== "clean" || layer.state === "creating") results.push(result);
      else {
        const backing = (await this.qemu.info(path, "qcow2")).backing;
        const expected = layer.parent === null ? undefined : `${layer.parent}.qcow2`;
        results.push(backing === expected ? result : { path, status: "inconsistent", detail: `backing file ${backing ?? "none"}, recorded ${expected ?? "none"}` });
      }
    }
    for (const [id, layer] of Object.entries(catalog.layers)) {
      if (layer.state !== "creating" && !names.has(`${id}.qcow2`)) results.push({ path: this.layerPath(id), status: "inconsistent", detail: `recorded as ${layer.state}, but the file is missing` });
    }
    return results;
  }

  /**
   * Makes layer `id` under the layer's lock, by `make(tmp, base)` writing
   * a qcow2 at `tmp` whose backing file is `base` (a name relative to the
   * snapshot directory, or null). First recorded as creating, with its
   * base (chosen by `chooseBase`) pinned; renamed into place and recorded
   * ready in one catalog transaction. A record still creating means an
   * attempt died: if the file was renamed already only the record is
   * finished, otherwise the temporary file (only this lock's holder
   * writes it) is made again over the same base.
   */
  private async createLayer(id: string, volumeId: string | null, chooseBase: (c: Catalog) => string | null, make: (tmp: string, base: string | null) => Promise<void>): Promise<SnapshotInfo> {
    const file = this.layerPath(id);
    const tmp = `${file}.tmp`;
    await this.ensureDirs();
    return this.locks.withLock(id, async (lease) => {
      const base = await this.transaction(async (tx): Promise<string | null | "done"> => {
        const layer = tx.catalog.layers[id];
        if (layer && layer.volumeId !== volumeId) throw new StorageError("Conflict", `snapshot ${id} was taken of ${layer.volumeId ?? "an imported file"}`);
        if (layer?.state === "deleted") throw new StorageError("NotFound", `snapshot ${id} was deleted`);
        if (layer?.state === "ready") return "done";
        if (layer?.state === "creating") {
          if (!(await hostPathExists(this.opts.runner, file))) return layer.parent;
          await this.markReady(tx, id);
          return "done";
        }
        const parent = chooseBase(tx.catalog);
        tx.catalog.layers[id] = { state: "creating", parent, volumeId, sizeBytes: 0 };
        if (parent !== null) tx.catalog.pins[id] = parent;
        await tx.save();
        return parent;
      });
      if (base !== "done") {
        await removeHostFiles(this.opts.runner, [tmp]);
        try {
          await make(tmp, base === null ? null : `${base}.qcow2`);
          await setHostFileMode(this.opts.runner, tmp, 0o600);
        } catch (err) {
          await removeHostFiles(this.opts.runner, [tmp]).catch(() => undefined);
          throw err;
        }
        await this.transaction(async (tx) => {
          await lease.assertHeld();
          await moveHostFile(this.opts.runner, tmp, file);
          await this.markReady(tx, id);
        });
      }
      return (await this.describe(id))!;
    });
  }

  /** Layer `id`'s file is in place: record it ready (the latest snapshot of its volume, its base no longer pinned) and collect what that frees. */
  private async markReady(tx: Transaction, id: string): Promise<void> {
    const layer = tx.catalog.layers[id]!;
    layer.sizeBytes = (await this.qemu.info(this.layerPath(id), "qcow2")).virtualSize;
    layer.state = "ready";
    delete tx.catalog.pins[id];
    if (layer.volumeId !== null) tx.catalog.heads[layer.volumeId] = id;
    await tx.save();
    await this.collect(tx);
  }

  /**
   * Releases the data of every deleted layer nothing reads (see fold). A
   * fold that fails (a reader's QEMU lock, a full disk) leaves its layer
   * reading as it did, to be collected by the next delete or snapshot. Not
   * run before a pin: a volume from a snapshot must not wait for a fold,
   * and need not, since a pinned layer (even one mid-fold) is never folded.
   */
  private async collect(tx: Transaction): Promise<void> {
    const skip = new Set<string>();
    for (let id = nextToCollect(tx.catalog, skip); id !== undefined; id = nextToCollect(tx.catalog, skip)) {
      try {
        await this.fold(tx, id);
      } catch (err) {
        if (err instanceof StorageError && err.kind === "Busy") throw err;
        skip.add(id);
        this.opts.log.warn({ err, snapshotId: id }, "storage: a deleted snapshot's data is kept until the next change of the store");
      }
    }
  }

  /**
   * Removes deleted layer `id`, which nothing pins, keeping every child
   * reading as before. No child: the file goes. One child smaller than it:
   * `qemu-img commit` writes the child's clusters into it (content the
   * child already overrides, so the child reads the same throughout), and
   * it is renamed over the child: the cost is the child's size. Otherwise
   * each child is rebased onto its parent (copying in the clusters it read
   * from this layer), then the file goes: the cost is this layer's size
   * per child. Marked folding first; a fold interrupted by a crash is
   * redone from whatever state it reached, which the headers tell (a child
   * whose backing file is no longer this layer is done, and a missing file
   * means it was renamed over its child).
   */
  private async fold(tx: Transaction, id: string): Promise<void> {
    const layer = tx.catalog.layers[id]!;
    if (!layer.folding) {
      layer.folding = true;
      await tx.save();
    }
    const file = this.layerPath(id);
    if (await hostPathExists(this.opts.runner, file)) {
      const children = childrenOf(tx.catalog, id);
      const reading: string[] = [];
      for (const child of children) if ((await this.qemu.info(this.layerPath(child), "qcow2")).backing === `${id}.qcow2`) reading.push(child);
      if (children.length === 1 && reading.length === 1 && (await this.commitIsCheaper(id, children[0]!))) {
        const child = this.layerPath(children[0]!);
        await this.qemu.commit(child);
        await tx.lease.assertHeld();
        await moveHostFile(this.opts.runner, file, child);
      } else {
        for (const child of reading) await this.qemu.rebase(this.layerPath(child), layer.parent === null ? null : `${layer.parent}.qcow2`);
        await tx.lease.assertHeld();
        await removeHostFiles(this.opts.runner, [file]);
      }
    }
    dropLayer(tx.catalog, id);
    await tx.save();
  }

  /** Whether committing `child` into `id` copies less than rebasing it (and keeps the child's size: commit grows the base, never shrinks it). */
  private async commitIsCheaper(id: string, child: string): Promise<boolean> {
    const [parent, kid] = await Promise.all([this.qemu.info(this.layerPath(id), "qcow2"), this.qemu.info(this.layerPath(child), "qcow2")]);
    return kid.actualSize < parent.actualSize && kid.virtualSize >= parent.virtualSize;
  }

  private transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.locks.withLock(CATALOG_LOCK, async (lease) => {
      const catalog = await this.readCatalog();
      // A holder that stalled past its lock must not write over the records of the host that took it over.
      const save = async () => {
        await lease.assertHeld();
        await writePrivateFile(this.opts.runner, this.catalogPath, `${JSON.stringify(catalog, null, 1)}\n`);
      };
      return fn({ catalog, lease, save });
    });
  }

  /** The catalog as last saved (replaced atomically, so reading it needs no lock). */
  private async readCatalog(): Promise<Catalog> {
    const text = await readHostFile(this.opts.runner, this.catalogPath);
    return text === undefined ? emptyCatalog() : parseCatalog(text);
  }

  /** A caller's export or import path, checked and resolved. */
  private async transferPath(what: string, path: string): Promise<string> {
    const { allowed, forbidden } = await this.transferDirs();
    const [resolved] = await resolveHostPaths(this.opts.runner, [path]);
    return checkCallerPath(what, path, resolved!, allowed, forbidden);
  }

}
