// EBS volumes as virtio disks of libvirt domains: hot plug and unplug, live
// growth and QoS changes, and the live snapshot (freeze into an overlay,
// read the frozen file, merge back). Every step reads the definitions first and does only what is
// missing, so a call repeated after a crash at any point completes it.
//
// Which disk is a volume: its <serial> (the volume id without the hyphen).
// Whether it runs on a live snapshot's overlay: libvirt names the backing
// file in the *persistent* definition only after an external snapshot (it
// never writes a detected backing chain there, and our definitions name
// none), so a volume disk whose persistent definition has a <backingStore>
// is on an overlay whose backing file is the volume's own.
import type { Logger } from "@cirrus/common";
import { removeHostFiles, withHostTempFile } from "../../runner/host-files.js";
import { CommandError, type CommandRunner } from "../../runner/types.js";
import { StorageError, type DiskSource } from "../../storage/types.js";
import type { ValidAttachment } from "../spec.js";
import { DetachPendingError, DriverError, type DetachOptions, type LiveSnapshotVolume, type VolumeModification, type VolumeQos } from "../types.js";
import { buildVolumeDiskXml, IOTUNE_FIELDS, volumeSerial } from "./domain-xml.js";
import { parseBlockCapacity, parseDomainDisks, type DomainDisk } from "./parse.js";
import type { Virsh } from "./virsh.js";

/** A forced detach waits this long for the guest (beyond libvirt's own 5 s), then reports the unplug as pending. */
const FORCE_WAIT_MS = 1_000;
const DETACH_POLL_MS = 200;
/** A block commit copies what the guest wrote while a snapshot was read: bounded by the snapshot's duration, not the volume's size. */
const COMMIT_TIMEOUT_MS = 3600_000;
const GIB = 1024 ** 3;
/** How QEMU words a refusal by an image lock (another guest writes the file). */
const LOCK_REFUSAL = /Failed to get (?:shared )?"[a-z ]+" lock/;

type Definition = "--config" | "--live";

/** The domain a call is about: its name, its instance, and whether it runs (else only its persistent definition exists to change). */
export interface VolumeDomain {
  name: string;
  instanceId: string;
  running: boolean;
}

const VOLUME_SERIAL = /^vol[0-9a-f]{17}$/;

export class VolumeDevices {
  constructor(
    private readonly virsh: Virsh,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
  ) {}

  /** See HypervisorDriver.attachVolume. */
  async attach(dom: VolumeDomain, a: ValidAttachment, disk: DiskSource): Promise<void> {
    const { name, running } = dom;
    const serial = volumeSerial(a.volumeId);
    const missing: Definition[] = [];
    for (const which of definitions(running)) {
      const disks = await this.disks(name, which);
      const mine = disks.find((d) => d.serial === serial);
      const other = disks.find((d) => d.target === a.target && d.serial !== serial);
      if (mine && mine.target !== a.target) throw new DriverError("Conflict", `${a.volumeId} is attached to ${name} at ${mine.target}, not ${a.target}`);
      if (other) throw new DriverError("Conflict", `target ${a.target} of ${name} holds another disk (${other.serial ?? other.source})`);
      if (!mine) missing.push(which);
    }
    if (missing.length === 0) return;
    const xml = buildVolumeDiskXml({ volumeId: a.volumeId, target: a.target, path: disk.path, qos: a.qos });
    await withHostTempFile(this.runner, "cirrus-disk", xml, async (file) => {
      try {
        await this.virsh.run(["attach-device", ...missing, "--", name, file]);
      } catch (err) {
        if (err instanceof CommandError && LOCK_REFUSAL.test(err.stderr)) throw new StorageError("InUse", `${a.volumeId} is held by another process: ${err.stderr.trim().slice(0, 300)}`);
        throw err;
      }
    });
  }

  /** See HypervisorDriver.detachVolume. */
  async detach(dom: VolumeDomain, volumeId: string, opts: DetachOptions): Promise<void> {
    const { name, running } = dom;
    const serial = volumeSerial(volumeId);
    // A disk on a live snapshot's overlay is merged back first: detaching it as it is would leave the guest's latest writes in the overlay.
    await this.settleOverlays(dom, (d) => d.serial === serial);
    const defined = (await this.disks(name, "--config")).find((d) => d.serial === serial);
    if (defined) await this.virsh.run(["detach-disk", "--config", "--", name, defined.target]);
    if (!running) return;
    const plugged = (await this.disks(name, "--live")).find((d) => d.serial === serial);
    if (!plugged) return;
    let refused = "";
    try {
      // libvirt waits up to 5 s for the guest; a request still pending then is not an error to it.
      await this.virsh.run(["detach-disk", "--live", "--", name, plugged.target]);
    } catch (err) {
      // An earlier request may still be pending (QEMU refuses a second device_del); only the disk still being there at the end counts.
      if (!(err instanceof CommandError)) throw err;
      refused = `: ${err.stderr.trim().slice(0, 300)}`;
    }
    const waitMs = opts.force ? Math.min(opts.waitMs, FORCE_WAIT_MS) : opts.waitMs;
    const deadline = Date.now() + waitMs;
    while ((await this.disks(name, "--live")).some((d) => d.serial === serial)) {
      if (Date.now() >= deadline) {
        throw new DetachPendingError(`the guest of ${name} has not released ${volumeId} (${plugged.target}) within ${waitMs} ms of the unplug request${refused}; it is removed from the persistent definition, and QEMU keeps the device until the guest lets go or the domain stops`);
      }
      await sleep(DETACH_POLL_MS);
    }
  }

  /** See HypervisorDriver.modifyAttachedVolume. */
  async modify(dom: VolumeDomain, mod: VolumeModification, resizeOffline: () => Promise<void>): Promise<boolean> {
    const { name } = dom;
    const serial = volumeSerial(mod.volumeId);
    // Growing a live snapshot's overlay would leave the volume's own file, which the store describes and snapshots, at the old size until the merge.
    await this.settleOverlays(dom, (d) => d.serial === serial);
    const defined = (await this.disks(name, "--config")).find((d) => d.serial === serial);
    const plugged = dom.running ? (await this.disks(name, "--live")).find((d) => d.serial === serial) : undefined;
    if (!defined && !plugged) return false;
    // The size first: a refused shrink changes nothing.
    if (plugged) await this.growLive(dom, plugged.target, mod);
    else await resizeOffline();
    const stale = ([[defined, "--config"], [plugged, "--live"]] as const).flatMap(([d, which]) => (d && !sameQos(d.qos, mod.qos) ? [{ target: d.target, which }] : []));
    const limits = IOTUNE_FIELDS.flatMap(([element, field]) => [`--${element.replaceAll("_", "-")}`, String(mod.qos[field])]);
    // One command for both definitions where the disk has one target in each (attach makes it so).
    for (const target of new Set(stale.map((x) => x.target))) {
      const flags = stale.filter((x) => x.target === target).map((x) => x.which);
      await this.virsh.run(["blkdeviotune", ...limits, ...flags, "--", name, target]);
      this.log.info({ instanceId: dom.instanceId, volumeId: mod.volumeId, target, definitions: flags, qos: mod.qos }, "volume QoS set");
    }
    return true;
  }

  /** See HypervisorDriver.snapshotAttachedVolume. */
  async snapshot<T>(dom: VolumeDomain, volume: LiveSnapshotVolume, take: (image: string) => Promise<T>): Promise<T | undefined> {
    const { name } = dom;
    const serial = volumeSerial(volume.volumeId);
    if (!dom.running) {
      await this.settleOverlays(dom, (d) => d.serial === serial);
      return undefined;
    }
    const live = (await this.disks(name, "--live")).find((d) => d.serial === serial);
    if (!live) return undefined;
    const base = volume.disk.path;
    if (live.source !== volume.overlay) {
      if (live.source !== base) {
        // Another snapshot's overlay, left by a crash: merged back, so this snapshot freezes the volume as it is now.
        if (live.backing !== base) throw new Error(`${volume.volumeId} of ${name} runs on ${live.source}, which is neither its file nor an overlay over it`);
        await this.commit(dom, live, volume.volumeId);
      }
      await this.freeze(name, live.target, volume.overlay);
      this.log.info({ instanceId: dom.instanceId, volumeId: volume.volumeId, overlay: volume.overlay }, "volume frozen for a live snapshot");
    }
    const frozen = { ...live, source: volume.overlay };
    let result: T;
    try {
      // The volume's file is now the overlay's backing, which QEMU holds read-only and no one writes.
      result = await take(base);
    } catch (err) {
      // Merged back whatever take's failure: the guest must not stay on the overlay until a retry that may never come.
      await this.commit(dom, frozen, volume.volumeId).catch((commitErr: unknown) =>
        this.log.error({ instanceId: dom.instanceId, volumeId: volume.volumeId, err: String(commitErr) }, "merging a live snapshot's overlay back failed; the next snapshot or detach of the volume merges it"),
      );
      throw err;
    }
    await this.commit(dom, frozen, volume.volumeId);
    return result;
  }

  /**
   * Merges every overlay of the domain's volume disks (those `which`
   * selects; all when not given) back into the volume's file: with a block
   * commit while the domain runs, with `qemu-img commit` while it is shut
   * off (then the disk is defined over the volume's file again). Each
   * overlay is removed once nothing names it.
   */
  async settleOverlays(dom: VolumeDomain, which: (d: DomainDisk) => boolean = () => true): Promise<void> {
    const { name } = dom;
    for (const d of (await this.disks(name, "--config")).filter((x) => VOLUME_SERIAL.test(x.serial ?? "") && x.backing !== undefined && which(x))) {
      const volumeId = volumeIdOf(d.serial!);
      if (dom.running) {
        const live = (await this.disks(name, "--live")).find((x) => x.serial === d.serial);
        if (live) await this.commit(dom, live, volumeId);
        continue;
      }
      // Offline: nobody holds either file, and a second commit after a crash finds nothing new to write.
      await this.runner.run(["qemu-img", "commit", "-q", "-f", "qcow2", "--", d.source], { timeoutMs: COMMIT_TIMEOUT_MS });
      const xml = buildVolumeDiskXml({ volumeId, target: d.target, path: d.backing!, qos: d.qos });
      await withHostTempFile(this.runner, "cirrus-disk", xml, async (file) => {
        await this.virsh.run(["detach-disk", "--config", "--", name, d.target]);
        await this.virsh.run(["attach-device", "--config", "--", name, file]);
      });
      await removeHostFiles(this.runner, [d.source]);
      this.log.warn({ instanceId: dom.instanceId, volumeId, overlay: d.source }, "merged a live snapshot's overlay left on a shut-off domain back into its volume");
    }
  }

  /**
   * External disk-only snapshot of `target` alone into `overlay` (which
   * must not exist: libvirt makes it, labelled for QEMU), without libvirt
   * metadata (nothing to delete later). Crash-consistent: the guest has
   * no agent to quiesce its filesystems.
   */
  private async freeze(name: string, target: string, overlay: string): Promise<void> {
    // Only a crashed attempt whose freeze never took effect leaves it (the guest runs on the volume's own file).
    await removeHostFiles(this.runner, [overlay]);
    const others = (await this.disks(name, "--live")).filter((d) => d.target !== target).flatMap((d) => ["--diskspec", `${d.target},snapshot=no`]);
    await this.virsh.run(["snapshot-create-as", "--domain", name, "--disk-only", "--no-metadata", "--atomic", "--diskspec", `${target},snapshot=external,file=${overlay}`, ...others]);
  }

  /** Writes the overlay `disk` runs on into its backing file and pivots the guest onto it (live and persistent definition), then removes the overlay. */
  private async commit(dom: VolumeDomain, disk: DomainDisk, volumeId: string): Promise<void> {
    await this.virsh.run(["blockcommit", "--active", "--pivot", "--wait", "--", dom.name, disk.target], { timeoutMs: COMMIT_TIMEOUT_MS });
    await removeHostFiles(this.runner, [disk.source]);
    this.log.info({ instanceId: dom.instanceId, volumeId, overlay: disk.source }, "live snapshot overlay merged back into its volume");
  }

  /** Grows the disk at `target` of the running domain to mod.sizeBytes, as QEMU sees it; a shrink is InvalidArgument. */
  private async growLive(dom: VolumeDomain, target: string, mod: VolumeModification): Promise<void> {
    const capacity = parseBlockCapacity((await this.virsh.run(["domblkinfo", "--", dom.name, target])).stdout.toString("utf8"));
    if (capacity === mod.sizeBytes) return;
    // blockresize shrinks as readily as it grows (libvirt 9, measured), cutting off whatever the guest keeps past the new end.
    if (capacity > mod.sizeBytes) throw new StorageError("InvalidArgument", `volume ${mod.volumeId} is ${capacity / GIB} GiB; a volume can only grow`);
    await this.virsh.run(["blockresize", "--", dom.name, target, `${mod.sizeBytes}B`]);
    this.log.info({ instanceId: dom.instanceId, volumeId: mod.volumeId, target, fromBytes: capacity, toBytes: mod.sizeBytes }, "volume grown live");
  }

  private async disks(name: string, which: Definition): Promise<DomainDisk[]> {
    const flags = which === "--config" ? ["--inactive"] : [];
    return parseDomainDisks((await this.virsh.run(["dumpxml", ...flags, "--", name])).stdout.toString("utf8"));
  }
}

/**
 * Whether a disk's <iotune> already is `want`. A burst length counts only
 * with a burst, and 0 (unset) means QEMU's default of 1 s: libvirt 9 keeps
 * a length of 1 in the definition after a burst is removed (measured).
 */
function sameQos(have: VolumeQos, want: VolumeQos): boolean {
  const burstLength = (q: VolumeQos) => (q.totalIopsSecMax > 0 ? Math.max(q.totalIopsSecMaxLength, 1) : 0);
  return have.totalIopsSec === want.totalIopsSec && have.totalBytesSec === want.totalBytesSec && have.totalIopsSecMax === want.totalIopsSecMax && burstLength(have) === burstLength(want);
}

function definitions(running: boolean): Definition[] {
  return running ? ["--config", "--live"] : ["--config"];
}

/** "vol0123…" (a disk serial) → "vol-0123…". */
function volumeIdOf(serial: string): string {
  return `vol-${serial.slice(3)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
