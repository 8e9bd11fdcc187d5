// bench/storage: the directory storage backend with real qemu-img, each
// figure against its limit measured in the same run:
// 1. createFromSnapshot of a 10 GiB snapshot (64 MiB of data) against
//    `qemu-img create -f qcow2 -b <snapshot file> -F qcow2` of the same
//    size timed by hand (goal: available in ≤ 1 s at the median);
// 2. the bytes a second snapshot of a 1 GiB volume stores after 10 MiB
//    written (160 writes of 64 KiB, one qcow2 cluster each, at distinct
//    random offsets) against those 10 MiB (goal: ≤ 20 MiB);
// 3. a first (full) snapshot of a 1 GiB volume holding 1 GiB of non-zero
//    data against `qemu-img convert -O qcow2` of the same file (ratio of
//    medians).
// Rounds alternate which side goes first after an uncounted warm-up; each
// side's output is removed (and `sync` run) before the other side runs.
// Everything lives in one directory below /var/tmp, removed at the end,
// also on failure or Ctrl-C. Run as root (qemu-img, qemu-io installed).
//
// Usage: npm run bench:storage -- [rounds]   (default 5)
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLogger, newId } from "@cirrus/common";
import { LocalRunner } from "../../agents/host-agent/src/runner/local.js";
import { DirectoryVolumeStore } from "../../agents/host-agent/src/storage/directory.js";
import { DirectorySnapshotStore } from "../../agents/host-agent/src/storage/directory-snapshots.js";
import { report, roundsOf, runRounds, summarize } from "../src/stats.js";

const exec = promisify(execFile);
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const CLUSTER = 64 * 1024;

const SEED = 64 * MiB; // written into the 10 GiB volume before its snapshot (part 1)
const BASE = 256 * MiB; // written into the 1 GiB volume before snapshot 1 (part 2)
const CHANGE = 10 * MiB; // written between snapshots 1 and 2 (part 2)
const FILL = 1 * GiB; // the 1 GiB volume snapshotted and converted (part 3)
// Real bytes at the peak, parts kept until the end: each part's data in its volume and once more in a snapshot (or the convert's output), plus 1 GiB of slack.
const NEED = 2 * SEED + 2 * (BASE + CHANGE) + 2 * FILL + GiB;

const fmt = (bytes: number) => `${(bytes / MiB).toFixed(2)} MiB`;
const timed = async (work: () => Promise<unknown>) => {
  const t = performance.now();
  await work();
  return performance.now() - t;
};
const qemuIo = (file: string, cmds: string[]) => exec("qemu-io", ["-f", "qcow2", ...cmds.flatMap((c) => ["-c", c]), file]);
const sync = () => exec("sync");

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const rounds = roundsOf(argv, 5);
  const reproduce = `npm run bench:storage -- ${rounds}`;
  const parent = "/var/tmp";
  const { bavail, bsize } = statfsSync(parent);
  if (bavail * bsize < NEED) throw new Error(`bench:storage needs ${(NEED / GiB).toFixed(1)} GiB free in ${parent}, has ${((bavail * bsize) / GiB).toFixed(1)} GiB`);

  const dir = mkdtempSync(join(parent, "cirrus-bench-storage-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  try {
    const runner = new LocalRunner();
    const log = createLogger("bench-storage");
    log.level = "warn";
    const [zone, region] = [join(dir, "zone"), join(dir, "region")];
    const snapshots = new DirectorySnapshotStore({ runner, root: region, owner: "bench", transferDirs: [join(dir, "transfer")], privateDirs: [zone], log });
    const volumes = new DirectoryVolumeStore({ runner, root: zone, owner: "bench", snapshots });
    const volumeFile = async (id: string) => (await volumes.describe(id))!.disk.path;
    const snapshotFile = (id: string) => join(region, "snapshots", `${id}.qcow2`);
    console.log(`directory store in ${dir}; ${rounds} rounds after a warm-up`);

    // 1. A volume from a 10 GiB snapshot.
    const big = newId("vol");
    await volumes.create(big, 10);
    await qemuIo(await volumeFile(big), [`write -P 0x11 0 ${SEED}`]);
    const bigSnap = (await volumes.snapshot(big, newId("snap"))).snapshotId;
    const backing = snapshotFile(bigSnap);
    if (!existsSync(backing)) throw new Error(`expected the snapshot's file at ${backing}`);
    const overlay = join(dir, "overlay.qcow2");
    const fromSnapshot = await runRounds(rounds, [
      {
        name: "createFromSnapshot",
        run: async (round) => {
          await sync();
          const id = newId("vol");
          const ms = await timed(() => volumes.createFromSnapshot(id, bigSnap, 10));
          // The volume reads the snapshot's data (checked once), then goes.
          if (round === 0) await exec("qemu-io", ["-r", "-f", "qcow2", "-c", `read -P 0x11 0 ${SEED}`, await volumeFile(id)]);
          await volumes.delete(id);
          return ms;
        },
      },
      {
        name: "qemu-img create -b",
        run: async () => {
          await sync();
          const ms = await timed(() => exec("qemu-img", ["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", overlay, "10G"]));
          rmSync(overlay);
          return ms;
        },
      },
    ]);
    console.log(report(`1. a 10 GiB volume from a 10 GiB snapshot (${fmt(SEED)} of data), ${rounds} rounds after a warm-up`, fromSnapshot, reproduce));
    const med = summarize(fromSnapshot[0]!.ms).median;
    console.log(`goal: available in ≤ 1 s: median ${med.toFixed(0)} ms, ${med <= 1000 ? "met" : "NOT met"}`);

    // 2. Incremental size.
    const vol = newId("vol");
    await volumes.create(vol, 1);
    const file = await volumeFile(vol);
    await qemuIo(file, [`write -P 0x22 0 ${BASE}`]);
    const first = await volumes.snapshot(vol, newId("snap"));
    const clusters = new Set<number>();
    while (clusters.size < CHANGE / CLUSTER) clusters.add(Math.floor((Math.random() * GiB) / CLUSTER));
    await qemuIo(file, [...clusters].map((c) => `write -P 0x33 ${c * CLUSTER} ${CLUSTER}`));
    let second!: Awaited<ReturnType<typeof volumes.snapshot>>;
    const ms = await timed(async () => (second = await volumes.snapshot(vol, newId("snap"))));
    console.log(`\n2. incremental snapshot of a 1 GiB volume (${fmt(BASE)} written, snapshot 1 stores ${fmt(first.storedBytes)}), then ${CHANGE / CLUSTER} writes of 64 KiB at distinct random cluster offsets`);
    console.log(`snapshot 2 stores ${fmt(second.storedBytes)} for ${fmt(CHANGE)} written: ${(second.storedBytes / CHANGE).toFixed(3)}x (taken in ${ms.toFixed(0)} ms)`);
    console.log(`goal: ≤ 20 MiB: ${second.storedBytes <= 20 * MiB ? "met" : "NOT met"}`);
    console.log(`reproduce: ${reproduce}`);

    // 3. A full snapshot against qemu-img convert.
    const full = newId("vol");
    await volumes.create(full, FILL / GiB);
    const fullFile = await volumeFile(full);
    await qemuIo(fullFile, [`write -P 0x44 0 ${FILL}`]);
    const converted = join(dir, "converted.qcow2");
    const snapshot = await runRounds(rounds, [
      {
        name: "snapshot",
        run: async () => {
          await sync();
          const id = newId("snap");
          const ms = await timed(() => volumes.snapshot(full, id));
          // A leaf nothing reads: deleting it removes the file, so the next round's snapshot is a full one again.
          await snapshots.deleteSnapshot(id);
          return ms;
        },
      },
      {
        name: "qemu-img convert -O qcow2",
        run: async () => {
          await sync();
          const ms = await timed(() => exec("qemu-img", ["convert", "-q", "-f", "qcow2", "-O", "qcow2", fullFile, converted]));
          rmSync(converted);
          return ms;
        },
      },
    ]);
    console.log(report(`3. a first snapshot of a 1 GiB volume holding ${fmt(FILL)} of non-zero data, ${rounds} rounds after a warm-up`, snapshot, reproduce));
  } finally {
    cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
