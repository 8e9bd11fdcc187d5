// The directory storage backend with real qemu-img: qemu-io writes data
// patterns into volumes offline and reads them back from volumes made from
// snapshots, from exports and through chains after deletions. Two store
// pairs on one set of directories stand for two hosts of a zone.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newId } from "@cirrus/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalRunner, localFiles } from "../src/runner/local.js";
import type { CommandRunner, HostFiles, RunOptions } from "../src/runner/types.js";
import { DirectoryVolumeStore } from "../src/storage/directory.js";
import { DirectorySnapshotStore } from "../src/storage/directory-snapshots.js";
import { StorageError } from "../src/storage/types.js";
import { quietLogger } from "./helpers.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The local runner, with one-shot failures injected before chosen operations: a crash of the agent at that point, as far as the store can tell. */
class FaultyRunner implements CommandRunner {
  readonly target = "local";
  readonly files: HostFiles;
  private readonly inner = new LocalRunner();
  private readonly faults: Array<(what: string) => boolean> = [];

  constructor() {
    this.files = {
      ...localFiles,
      rename: async (from, to) => {
        this.trip(`rename ${from} ${to}`);
        return localFiles.rename(from, to);
      },
      writeAtomic: async (path, content, mode) => {
        this.trip(`write ${path}`);
        return localFiles.writeAtomic(path, content, mode);
      },
      remove: async (paths) => {
        this.trip(`remove ${paths.join(" ")}`);
        return localFiles.remove(paths);
      },
    };
  }

  /** The next operation matching `pattern` fails instead of running. */
  failNext(pattern: RegExp): void {
    this.faults.push((what) => pattern.test(what));
  }

  run(argv: string[], opts?: RunOptions) {
    this.trip(argv.join(" "));
    return this.inner.run(argv, opts);
  }

  close() {
    return this.inner.close();
  }

  private trip(what: string): void {
    const i = this.faults.findIndex((f) => f(what));
    if (i < 0) return;
    this.faults.splice(i, 1);
    throw new Error(`injected crash before: ${what}`);
  }
}

let base: string;
let zone: string;
let region: string;
let transfer: string;
const runner = new FaultyRunner();

/** One host's stores over the shared directories. */
function host(owner: string, staleMs = 60_000) {
  const snapshots = new DirectorySnapshotStore({ runner, root: region, owner, transferDirs: [transfer], privateDirs: [zone], log: quietLogger(), lockStaleMs: staleMs });
  const volumes = new DirectoryVolumeStore({ runner, root: zone, owner, snapshots, lockStaleMs: staleMs });
  return { snapshots, volumes };
}

let a: ReturnType<typeof host>;
let b: ReturnType<typeof host>;

const volFile = (id: string) => join(zone, "volumes", `${id}.qcow2`);
const snapFile = (id: string) => join(region, "snapshots", `${id}.qcow2`);
const fileSize = (path: string) => statSync(path).size;

function qemuIo(file: string, format: "qcow2" | "raw", readOnly: boolean, cmds: string[]): void {
  execFileSync("qemu-io", [...(readOnly ? ["-r"] : []), "-f", format, ...cmds.flatMap((c) => ["-c", c]), file], { stdio: "pipe" });
}

type Extent = [pattern: number, offset: number, length: number];

function write(file: string, ...extents: Extent[]): void {
  qemuIo(file, "qcow2", false, extents.map(([p, o, l]) => `write -P ${p} ${o} ${l}`));
}

/** Throws (qemu-io exits 1) unless every extent reads as its pattern (0: zeros). */
function expectReads(file: string, extents: Extent[], format: "qcow2" | "raw" = "qcow2"): void {
  qemuIo(file, format, true, extents.map(([p, o, l]) => `read -P ${p} ${o} ${l}`));
}

function info(file: string): { "backing-filename"?: string; "virtual-size": number } {
  return JSON.parse(execFileSync("qemu-img", ["info", "-U", "--output=json", "-f", "qcow2", file], { encoding: "utf8" })) as { "backing-filename"?: string; "virtual-size": number };
}

/** qemu-img check of every file both stores own is clean, and the snapshot files agree with the catalog. */
async function expectAllClean(): Promise<void> {
  const results = [...(await a.volumes.check()), ...(await a.snapshots.check())];
  expect(results.filter((r) => r.status !== "clean")).toEqual([]);
}

/** Every regular file below `dir`, relative. */
function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((p) => !lstatSync(join(dir, p)).isDirectory())
    .sort();
}

async function rejection(p: Promise<unknown>): Promise<StorageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StorageError);
  return err as StorageError;
}

/** Stops a holdOpen process and waits until it has gone (and with it its locks). */
async function release(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once("exit", r));
  child.kill();
  await exited;
}

/** A qemu-io that keeps `file` open (for writing unless readOnly) until killed: a running guest, as far as QEMU's locks go. */
async function holdOpen(file: string, readOnly: boolean): Promise<ChildProcess> {
  const child = spawn("qemu-io", [...(readOnly ? ["-r"] : []), "-f", "qcow2", file], { stdio: ["pipe", "ignore", "ignore"] });
  // qemu-io takes its locks when it opens the image, before it reads a command.
  await new Promise((r) => setTimeout(r, 300));
  return child;
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "cirrus-storage-"));
  zone = join(base, "zone-a");
  region = join(base, "region");
  transfer = join(base, "transfer");
  mkdirSync(transfer);
  a = host("host-a");
  b = host("host-b");
});

afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("directory storage with qemu-img", () => {
  const V = newId("vol");
  const [S1, S2, S3] = [newId("snap"), newId("snap"), newId("snap")];
  const fromS1 = newId("vol");
  const fromS2 = newId("vol");

  it("create makes a volume of the size, zeros, 0600 in 0711 directories; again changes nothing", async () => {
    await a.volumes.create(V, 1);
    expect(info(volFile(V))["virtual-size"]).toBe(GiB);
    expectReads(volFile(V), [[0, 0, 4 * MiB]]);
    expect(statSync(volFile(V)).mode & 0o777).toBe(0o600);
    expect(statSync(join(zone, "volumes")).mode & 0o777).toBe(0o711);
    expect(statSync(join(zone, "locks")).mode & 0o777).toBe(0o700);
    write(volFile(V), [0xaa, 0, 4 * MiB]);
    await b.volumes.create(V, 1);
    expectReads(volFile(V), [[0xaa, 0, 4 * MiB]]);
    expect(await a.volumes.describe(V)).toMatchObject({ volumeId: V, sizeBytes: GiB, disk: { kind: "file", path: volFile(V), format: "qcow2" } });
    await expectAllClean();
  });

  it("snapshots are incremental: the second stores only what changed since the first, with the first as its backing file", async () => {
    const s1 = await a.volumes.snapshot(V, S1);
    expect(s1).toMatchObject({ snapshotId: S1, volumeId: V, sizeBytes: GiB });
    expect(s1.storedBytes).toBeGreaterThanOrEqual(4 * MiB);
    expect(info(snapFile(S1))["backing-filename"]).toBeUndefined();
    write(volFile(V), [0xbb, 8 * MiB, 10 * MiB]);
    const s2 = await b.volumes.snapshot(V, S2);
    // 10 MiB written: the bound is 20 MiB; qcow2 metadata is a few hundred KiB.
    expect(s2.storedBytes).toBeLessThanOrEqual(10 * MiB + MiB);
    expect(fileSize(snapFile(S2))).toBeLessThanOrEqual(2 * 10 * MiB);
    expect(info(snapFile(S2))["backing-filename"]).toBe(`${S1}.qcow2`);
    expect(statSync(snapFile(S2)).mode & 0o777).toBe(0o600);
    // The volume depends on neither.
    expect(info(volFile(V))["backing-filename"]).toBeUndefined();
    expect(await a.volumes.snapshot(V, S2)).toEqual(s2);
    await expectAllClean();
  });

  it("a volume from a snapshot reads it as it was: from the first only the first pattern, from the second both", async () => {
    write(volFile(V), [0xcc, 32 * MiB, 64 * 1024]);
    await a.volumes.createFromSnapshot(fromS1, S1, 1);
    await b.volumes.createFromSnapshot(fromS2, S2, 2);
    expectReads(volFile(fromS1), [[0xaa, 0, 4 * MiB], [0, 8 * MiB, 10 * MiB], [0, 32 * MiB, 64 * 1024]]);
    expectReads(volFile(fromS2), [[0xaa, 0, 4 * MiB], [0xbb, 8 * MiB, 10 * MiB], [0, 32 * MiB, 64 * 1024], [0, 1.5 * GiB, MiB]]);
    expect(info(volFile(fromS2))).toMatchObject({ "backing-filename": snapFile(S2), "virtual-size": 2 * GiB });
    expect((await rejection(a.volumes.createFromSnapshot(newId("vol"), newId("snap"), 1))).kind).toBe("NotFound");
    await expectAllClean();
  });

  it("a volume made from a snapshot is snapshotted against that snapshot: the new one stores only the volume's writes", async () => {
    write(volFile(fromS1), [0xdd, 100 * MiB, MiB]);
    const s = await a.volumes.snapshot(fromS1, S3);
    expect(info(snapFile(S3))["backing-filename"]).toBe(`${S1}.qcow2`);
    expect(s.storedBytes).toBeLessThan(2 * MiB);
    await a.snapshots.deleteSnapshot(S3);
    expect(existsSync(snapFile(S3))).toBe(false);
    await expectAllClean();
  });

  it("deleting the first snapshot keeps the second and the volume made from the first; its data goes with the last volume reading it", async () => {
    await a.snapshots.deleteSnapshot(S1);
    expect(await a.snapshots.describe(S1)).toBeUndefined();
    expect((await rejection(a.volumes.createFromSnapshot(newId("vol"), S1, 1))).kind).toBe("NotFound");
    // Kept: the volume from it (and S2) read through it.
    expect(existsSync(snapFile(S1))).toBe(true);
    expectReads(volFile(fromS1), [[0xaa, 0, 4 * MiB], [0xdd, 100 * MiB, MiB]]);
    expectReads(snapFile(S2), [[0xaa, 0, 4 * MiB], [0xbb, 8 * MiB, 10 * MiB]]);
    await a.snapshots.deleteSnapshot(S1);
    await a.volumes.delete(fromS1);
    // Still read through S2 by the volume made from S2.
    expect(existsSync(snapFile(S1))).toBe(true);
    await a.volumes.delete(fromS2);
    // Folded into S2 (the bigger child: rebased onto nothing, S1's data copied in), then removed.
    expect(existsSync(snapFile(S1))).toBe(false);
    expect(info(snapFile(S2))["backing-filename"]).toBeUndefined();
    expectReads(snapFile(S2), [[0xaa, 0, 4 * MiB], [0xbb, 8 * MiB, 10 * MiB]]);
    await expectAllClean();
  });

  it("deleting a middle snapshot whose child is smaller commits the child into it and renames it over the child", async () => {
    const [M, L] = [newId("snap"), newId("snap")];
    write(volFile(V), [0xee, 200 * MiB, 8 * MiB]);
    await a.volumes.snapshot(V, M);
    write(volFile(V), [0x11, 300 * MiB, 64 * 1024]);
    await a.volumes.snapshot(V, L);
    expect(info(snapFile(L))["backing-filename"]).toBe(`${M}.qcow2`);
    const before = fileSize(snapFile(L));
    await b.snapshots.deleteSnapshot(M);
    expect(existsSync(snapFile(M))).toBe(false);
    expect(info(snapFile(L))["backing-filename"]).toBe(`${S2}.qcow2`);
    expect(fileSize(snapFile(L))).toBeGreaterThan(before + 8 * MiB);
    expectReads(snapFile(L), [[0xaa, 0, 4 * MiB], [0xbb, 8 * MiB, 10 * MiB], [0xcc, 32 * MiB, 64 * 1024], [0xee, 200 * MiB, 8 * MiB], [0x11, 300 * MiB, 64 * 1024]]);
    // The volume's next snapshot still diffs against its latest, L.
    write(volFile(V), [0x22, 400 * MiB, MiB]);
    const next = newId("snap");
    expect((await a.volumes.snapshot(V, next)).storedBytes).toBeLessThan(2 * MiB);
    expect(info(snapFile(next))["backing-filename"]).toBe(`${L}.qcow2`);
    await a.snapshots.deleteSnapshot(next);
    await a.snapshots.deleteSnapshot(L);
    await expectAllClean();
  });

  it("a snapshot with two children (two volumes' snapshots) is rebased out of both when deleted", async () => {
    const [D, T1, T2] = [newId("vol"), newId("snap"), newId("snap")];
    await a.volumes.createFromSnapshot(D, S2, 1);
    write(volFile(D), [0x33, 500 * MiB, MiB]);
    await a.volumes.snapshot(D, T1);
    write(volFile(V), [0x44, 600 * MiB, MiB]);
    // V's latest snapshot was deleted (and with it its parent): V's next one diffs against S2, the nearest kept ancestor.
    await a.volumes.snapshot(V, T2);
    expect(info(snapFile(T1))["backing-filename"]).toBe(`${S2}.qcow2`);
    expect(info(snapFile(T2))["backing-filename"]).toBe(`${S2}.qcow2`);
    await a.volumes.delete(D);
    await a.snapshots.deleteSnapshot(S2);
    expect(existsSync(snapFile(S2))).toBe(false);
    expect(info(snapFile(T1))["backing-filename"]).toBeUndefined();
    expect(info(snapFile(T2))["backing-filename"]).toBeUndefined();
    expectReads(snapFile(T1), [[0xaa, 0, 4 * MiB], [0xbb, 8 * MiB, 10 * MiB], [0x33, 500 * MiB, MiB], [0, 600 * MiB, MiB]]);
    expectReads(snapFile(T2), [[0xaa, 0, 4 * MiB], [0xbb, 8 * MiB, 10 * MiB], [0xee, 200 * MiB, 8 * MiB], [0x44, 600 * MiB, MiB], [0, 500 * MiB, MiB]]);
    await expectAllClean();
    await a.snapshots.deleteSnapshot(T1);
    await a.snapshots.deleteSnapshot(T2);
  });

  it("resize grows and keeps the data, the same size is a no-op, a shrink is refused; snapshots span the growth", async () => {
    const [R1, R2] = [newId("snap"), newId("snap")];
    await a.volumes.snapshot(V, R1);
    await a.volumes.resize(V, 3);
    expect(info(volFile(V))["virtual-size"]).toBe(3 * GiB);
    expectReads(volFile(V), [[0xaa, 0, 4 * MiB], [0x44, 600 * MiB, MiB], [0, 2.5 * GiB, MiB]]);
    await b.volumes.resize(V, 3);
    expect((await rejection(a.volumes.resize(V, 2))).kind).toBe("InvalidArgument");
    expect(info(volFile(V))["virtual-size"]).toBe(3 * GiB);
    expect((await rejection(a.volumes.resize(newId("vol"), 2))).kind).toBe("NotFound");
    write(volFile(V), [0x66, 2.5 * GiB, MiB]);
    const r2 = await a.volumes.snapshot(V, R2);
    expect(r2).toMatchObject({ sizeBytes: 3 * GiB });
    expect(r2.storedBytes).toBeLessThan(2 * MiB);
    expect(info(snapFile(R2))["backing-filename"]).toBe(`${R1}.qcow2`);
    // R2 (3 GiB, small) is committed into R1 (1 GiB), which qemu-img grows first.
    await a.snapshots.deleteSnapshot(R1);
    expect(existsSync(snapFile(R1))).toBe(false);
    expect(info(snapFile(R2))).toMatchObject({ "virtual-size": 3 * GiB });
    expect(info(snapFile(R2))["backing-filename"]).toBeUndefined();
    expectReads(snapFile(R2), [[0xaa, 0, 4 * MiB], [0x44, 600 * MiB, MiB], [0x66, 2.5 * GiB, MiB], [0, 2 * GiB, MiB]]);
    await a.snapshots.deleteSnapshot(R2);
    await expectAllClean();
  });

  it("a volume from a 10 GiB snapshot is ready in well under a second, as a small overlay", async () => {
    const [big, snap, copy] = [newId("vol"), newId("snap"), newId("vol")];
    await a.volumes.create(big, 10);
    write(volFile(big), [0x55, 9 * GiB, MiB]);
    await a.volumes.snapshot(big, snap);
    const t0 = performance.now();
    await b.volumes.createFromSnapshot(copy, snap, 10);
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(500);
    expect(fileSize(volFile(copy))).toBeLessThan(MiB);
    expect(info(volFile(copy))).toMatchObject({ "backing-filename": snapFile(snap), "virtual-size": 10 * GiB });
    expectReads(volFile(copy), [[0x55, 9 * GiB, MiB]]);
    expect((await rejection(a.volumes.createFromSnapshot(newId("vol"), snap, 9))).kind).toBe("InvalidArgument");
    for (const v of [big, copy]) await a.volumes.delete(v);
    await a.snapshots.deleteSnapshot(snap);
    await expectAllClean();
  });

  it("delete removes the volume; again is a no-op", async () => {
    await a.volumes.delete(V);
    expect(existsSync(volFile(V))).toBe(false);
    expect(await a.volumes.describe(V)).toBeUndefined();
    await b.volumes.delete(V);
    expect((await rejection(a.volumes.snapshot(V, newId("snap")))).kind).toBe("NotFound");
  });
});

describe("crashes part-way are finished by a retry", () => {
  it("a snapshot whose temporary file was left behind is finished by the retry: one file, no temporary, right data", async () => {
    const [v, s] = [newId("vol"), newId("snap")];
    await a.volumes.create(v, 1);
    write(volFile(v), [0x61, 0, MiB]);
    runner.failNext(new RegExp(`^rename .*${s}\\.qcow2\\.tmp`));
    await expect(a.volumes.snapshot(v, s)).rejects.toThrow(/injected/);
    expect(existsSync(`${snapFile(s)}.tmp`)).toBe(true);
    expect(existsSync(snapFile(s))).toBe(false);
    expect(await a.snapshots.describe(s)).toBeUndefined();
    const done = await b.volumes.snapshot(v, s);
    expect(done.snapshotId).toBe(s);
    expect(existsSync(`${snapFile(s)}.tmp`)).toBe(false);
    expectReads(snapFile(s), [[0x61, 0, MiB]]);
    await expectAllClean();
    await a.snapshots.deleteSnapshot(s);
    await a.volumes.delete(v);
  });

  it("a snapshot renamed into place just before the crash is only recorded by the retry, not taken again", async () => {
    const [v, s] = [newId("vol"), newId("snap")];
    await a.volumes.create(v, 1);
    write(volFile(v), [0x62, 0, MiB]);
    await expect(snapshotCrashingAfterRename(v, s)).rejects.toThrow(/injected/);
    expect(existsSync(snapFile(s))).toBe(true);
    expect(await a.snapshots.describe(s)).toBeUndefined();
    const inode = statSync(snapFile(s)).ino;
    await a.volumes.snapshot(v, s);
    expect(statSync(snapFile(s)).ino).toBe(inode);
    expect(await a.snapshots.describe(s)).toMatchObject({ snapshotId: s, volumeId: v });
    await expectAllClean();
    await a.snapshots.deleteSnapshot(s);
    await a.volumes.delete(v);
  });

  it("a fold interrupted before its rename is finished by the next snapshot, and the chain reads the same throughout", async () => {
    const [v, s1, s2, other] = [newId("vol"), newId("snap"), newId("snap"), newId("snap")];
    await a.volumes.create(v, 1);
    write(volFile(v), [0x71, 0, 8 * MiB]);
    await a.volumes.snapshot(v, s1);
    write(volFile(v), [0x72, 16 * MiB, 64 * 1024]);
    await a.volumes.snapshot(v, s2);
    runner.failNext(new RegExp(`^rename .*${s1}\\.qcow2 `));
    // The snapshot is gone for callers at once; its fold failing (as a crash would stop it) leaves it to be finished later.
    await a.snapshots.deleteSnapshot(s1);
    expect(await a.snapshots.describe(s1)).toBeUndefined();
    expect(JSON.parse(readFileSync(join(region, "catalog.json"), "utf8")).layers[s1]).toMatchObject({ state: "deleted", folding: true });
    // Committed into s1 but not renamed: s2 still reads through s1, and reads right.
    expect(existsSync(snapFile(s1))).toBe(true);
    expect(info(snapFile(s2))["backing-filename"]).toBe(`${s1}.qcow2`);
    expectReads(snapFile(s2), [[0x71, 0, 8 * MiB], [0x72, 16 * MiB, 64 * 1024]]);
    // The next snapshot (or delete) finishes it; here a snapshot of another volume.
    const w = newId("vol");
    await a.volumes.create(w, 1);
    await a.volumes.snapshot(w, other);
    expect(existsSync(snapFile(s1))).toBe(false);
    expect(info(snapFile(s2))["backing-filename"]).toBeUndefined();
    expectReads(snapFile(s2), [[0x71, 0, 8 * MiB], [0x72, 16 * MiB, 64 * 1024]]);
    await expectAllClean();
    for (const s of [s2, other]) await a.snapshots.deleteSnapshot(s);
    for (const x of [v, w]) await a.volumes.delete(x);
  });

  it("a volume whose temporary file was left behind is made again by the retry", async () => {
    const v = newId("vol");
    runner.failNext(new RegExp(`^rename .*${v}\\.qcow2\\.tmp`));
    await expect(a.volumes.create(v, 1)).rejects.toThrow(/injected/);
    expect(existsSync(`${volFile(v)}.tmp`)).toBe(true);
    await b.volumes.create(v, 1);
    expect(existsSync(`${volFile(v)}.tmp`)).toBe(false);
    expect(info(volFile(v))["virtual-size"]).toBe(GiB);
    await a.volumes.delete(v);
  });

  it("a lock left by a dead host is taken over once stale, and the operation completes", async () => {
    const v = newId("vol");
    symlinkSync("dead-host@00", join(zone, "locks", `${v}.lock`));
    const t0 = Date.now();
    await host("host-c", 500).volumes.create(v, 1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    expect(existsSync(join(zone, "locks", `${v}.lock`))).toBe(false);
    await a.volumes.delete(v);
  });

  /** Takes the snapshot with the catalog write that would record it ready failing (the "creating" record before it goes through). */
  async function snapshotCrashingAfterRename(v: string, s: string) {
    const real = runner.files.writeAtomic;
    runner.files.writeAtomic = async (path, content, mode) => {
      if (path.endsWith("catalog.json") && existsSync(snapFile(s)) && content.toString().includes(`"${s}"`)) {
        runner.files.writeAtomic = real;
        throw new Error("injected crash before recording the snapshot ready");
      }
      return real(path, content, mode);
    };
    try {
      return await a.volumes.snapshot(v, s);
    } finally {
      runner.files.writeAtomic = real;
    }
  }
});

describe("ids and paths outside the store are refused before anything is touched", () => {
  it("malformed ids", async () => {
    for (const bad of ["vol-123", "../../etc/passwd", "vol-0123456789abcdef0/../x", "snap-0123456789abcdef0", "VOL-0123456789ABCDEF0"]) {
      expect((await rejection(a.volumes.create(bad, 1))).kind).toBe("InvalidArgument");
      expect((await rejection(a.volumes.delete(bad))).kind).toBe("InvalidArgument");
    }
    for (const bad of ["snap-1", "vol-0123456789abcdef0", "snap-0123456789abcdef0.qcow2"]) {
      expect((await rejection(a.snapshots.deleteSnapshot(bad))).kind).toBe("InvalidArgument");
      expect((await rejection(a.volumes.snapshot(newId("vol"), bad))).kind).toBe("InvalidArgument");
    }
    for (const size of [0, -1, 1.5, 70_000, Number.NaN]) expect((await rejection(a.volumes.create(newId("vol"), size))).kind).toBe("InvalidArgument");
  });

  it("export and import only below the transfer directories, never into the store, never through a symlink out", async () => {
    const [v, s] = [newId("vol"), newId("snap")];
    await a.volumes.create(v, 1);
    await a.volumes.snapshot(v, s);
    symlinkSync(join(region, "snapshots"), join(transfer, "into-store"));
    for (const dest of [join(base, "elsewhere.qcow2"), snapFile(newId("snap")), join(transfer, "into-store", "x.qcow2"), `${transfer}/../region/x.qcow2`, "relative.qcow2", join(zone, "x.qcow2")]) {
      expect((await rejection(a.snapshots.exportSnapshot(s, dest, "qcow2"))).kind).toBe("InvalidArgument");
    }
    expect((await rejection(a.snapshots.importSnapshot(newId("snap"), "/etc/passwd", "raw"))).kind).toBe("InvalidArgument");
    expect((await rejection(a.snapshots.importSnapshot(newId("snap"), join(transfer, "into-store", `${s}.qcow2`), "qcow2"))).kind).toBe("InvalidArgument");
    // A qcow2 naming a backing file (here /etc/passwd, as raw) would let an import read any host file.
    const sneaky = join(transfer, "sneaky.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", sneaky, "1M"]);
    expect((await rejection(a.snapshots.importSnapshot(newId("snap"), sneaky, "qcow2"))).kind).toBe("InvalidImage");
    writeFileSync(join(transfer, "not-qcow2"), "hello");
    expect((await rejection(a.snapshots.importSnapshot(newId("snap"), join(transfer, "not-qcow2"), "qcow2"))).kind).toBe("InvalidImage");
    expect((await rejection(a.volumes.snapshotFrom(v, newId("snap"), join(transfer, "sneaky.qcow2")))).kind).toBe("InvalidArgument");
    await a.snapshots.deleteSnapshot(s);
    await a.volumes.delete(v);
    rmSync(join(transfer, "into-store"));
  });
});

describe("export and import", () => {
  it("round-trips a snapshot through a plain file into an independent one; a repeat is a no-op, another file a Conflict", async () => {
    const [v, s, copy, restored] = [newId("vol"), newId("snap"), newId("snap"), newId("vol")];
    await a.volumes.create(v, 1);
    write(volFile(v), [0x81, 0, MiB], [0x82, 512 * MiB, MiB]);
    await a.volumes.snapshot(v, s);
    const qcow = join(transfer, `${s}.qcow2`);
    const raw = join(transfer, `${s}.raw`);
    await a.snapshots.exportSnapshot(s, qcow, "qcow2");
    await a.snapshots.exportSnapshot(s, raw, "raw");
    expect(statSync(qcow).mode & 0o777).toBe(0o600);
    expect(info(qcow)["backing-filename"]).toBeUndefined();
    expectReads(raw, [[0x81, 0, MiB], [0x82, 512 * MiB, MiB]], "raw");
    await b.snapshots.exportSnapshot(s, qcow, "qcow2");
    expect((await rejection(a.snapshots.exportSnapshot(s, join(transfer, "sneaky.qcow2"), "qcow2"))).kind).toBe("Conflict");
    const imported = await b.snapshots.importSnapshot(copy, raw, "raw");
    expect(imported).toMatchObject({ snapshotId: copy, volumeId: undefined, sizeBytes: GiB });
    expect(await a.snapshots.importSnapshot(copy, raw, "raw")).toEqual(imported);
    // The copy is independent: delete the original and its volume, restore from the copy.
    await a.snapshots.deleteSnapshot(s);
    await a.volumes.delete(v);
    await a.volumes.createFromSnapshot(restored, copy, 1);
    expectReads(volFile(restored), [[0x81, 0, MiB], [0x82, 512 * MiB, MiB]]);
    await expectAllClean();
    await a.volumes.delete(restored);
    await a.snapshots.deleteSnapshot(copy);
    for (const f of [qcow, raw, join(transfer, "sneaky.qcow2"), join(transfer, "not-qcow2")]) rmSync(f);
  });
});

describe("volumes a running guest holds (QEMU's image locks)", () => {
  it("an offline snapshot, a resize and a delete of a volume being written are refused with InUse, recording nothing", async () => {
    const [v, s] = [newId("vol"), newId("snap")];
    await a.volumes.create(v, 1);
    const guest = await holdOpen(volFile(v), false);
    try {
      expect((await rejection(a.volumes.snapshot(v, s))).kind).toBe("InUse");
      expect((await rejection(a.volumes.resize(v, 2))).kind).toBe("InUse");
      expect((await rejection(a.volumes.delete(v))).kind).toBe("InUse");
      expect(await a.snapshots.describe(s)).toBeUndefined();
      expect(existsSync(snapFile(s))).toBe(false);
      expect(JSON.parse(readFileSync(join(region, "catalog.json"), "utf8")).layers[s]).toBeUndefined();
      expect((await a.volumes.check()).find((r) => r.path === volFile(v))?.status).toBe("in-use");
    } finally {
      await release(guest);
    }
    await a.volumes.delete(v);
  });

  it("snapshotFrom reads a volume frozen behind an overlay the guest writes (the live path's store side)", async () => {
    const [v, s, check] = [newId("vol"), newId("snap"), newId("vol")];
    await a.volumes.create(v, 1);
    write(volFile(v), [0x91, 0, MiB]);
    // What a libvirt external disk-only snapshot leaves: the guest writes an overlay, the volume is its read-only backing.
    const overlay = join(base, `${v}.overlay.qcow2`);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", volFile(v), overlay]);
    const guest = await holdOpen(overlay, false);
    try {
      await a.volumes.snapshotFrom(v, s, volFile(v));
    } finally {
      await release(guest);
    }
    await a.volumes.createFromSnapshot(check, s, 1);
    expectReads(volFile(check), [[0x91, 0, MiB]]);
    for (const x of [check, v]) await a.volumes.delete(x);
    await a.snapshots.deleteSnapshot(s);
    rmSync(overlay);
    await expectAllClean();
  });
});

describe("two hosts on one directory", () => {
  it("the same snapshot taken by both at once is taken once; a delete racing volume creations from it breaks none", async () => {
    const [v, s] = [newId("vol"), newId("snap")];
    await a.volumes.create(v, 1);
    write(volFile(v), [0xa1, 0, 2 * MiB]);
    const [x, y] = await Promise.all([a.volumes.snapshot(v, s), b.volumes.snapshot(v, s)]);
    expect(x).toEqual(y);
    const made = [newId("vol"), newId("vol"), newId("vol")];
    const results = await Promise.allSettled([...made.map((m, i) => (i % 2 ? a : b).volumes.createFromSnapshot(m, s, 1)), b.snapshots.deleteSnapshot(s)]);
    expect(results.at(-1)!.status).toBe("fulfilled");
    const created = made.filter((_, i) => results[i]!.status === "fulfilled");
    // Each creation either came before the delete (and reads the data) or after it (NotFound).
    for (const r of results.slice(0, -1)) if (r.status === "rejected") expect((r.reason as StorageError).kind, String(r.reason)).toBe("NotFound");
    for (const m of created) expectReads(volFile(m), [[0xa1, 0, 2 * MiB]]);
    expect(existsSync(snapFile(s))).toBe(created.length > 0);
    await expectAllClean();
    await Promise.all([...created, v].map((m, i) => (i % 2 ? a : b).volumes.delete(m)));
    expect(existsSync(snapFile(s))).toBe(false);
  });
});

describe("after everything is deleted", () => {
  it("no volume, snapshot, temporary or lock file is left; the catalog is empty", async () => {
    await expectAllClean();
    expect(filesBelow(zone)).toEqual([]);
    expect(filesBelow(region)).toEqual(["catalog.json"]);
    expect(JSON.parse(readFileSync(join(region, "catalog.json"), "utf8"))).toEqual({ version: 1, layers: {}, heads: {}, pins: {} });
    expect(statSync(join(region, "catalog.json")).mode & 0o777).toBe(0o600);
  });
});
