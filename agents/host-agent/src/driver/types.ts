// The hypervisor boundary (design principle 4): one interface with written
// postconditions. The libvirt driver is what users run; the fake driver
// serves scheduler and scale simulations.
import type { agent } from "@cirrus/proto";
import type { DiskSource } from "../storage/types.js";

export type PowerState = agent.PowerState;
export type InstanceSpec = agent.InstanceSpec;
export type VolumeAttachment = agent.VolumeAttachment;
export type VolumeQos = agent.VolumeQos;

export interface DetachOptions {
  /**
   * Do not wait for the guest beyond a short moment. The volume leaves the
   * persistent definition at once either way; what force cannot do is take
   * a disk from a running guest that never acknowledges the unplug: QEMU
   * has no forced PCI hot-unplug, so until the guest lets go (or the
   * domain stops) QEMU keeps the device and its file open.
   */
  force: boolean;
  /** How long to wait for a running guest to release the device. */
  waitMs: number;
}

/** An attached volume for a live snapshot: where its data is, and where the guest's writes go meanwhile. */
export interface LiveSnapshotVolume {
  volumeId: string;
  disk: DiskSource;
  /** A file below the volume store's root that does not exist yet (VolumeStore's liveOverlayPath): the overlay taking the guest's writes while the volume's file is read. */
  overlay: string;
}

/** What ModifyVolume asks of a volume: its new size and QoS. */
export interface VolumeModification {
  volumeId: string;
  /** A whole number of GiB, in bytes (the store's sizes). */
  sizeBytes: number;
  /** The disk's <iotune>, each limit 0 for none. */
  qos: VolumeQos;
}

export interface Capacity {
  vcpus: number;
  memoryMib: number;
  diskGib: number;
}

export interface DomainStatus {
  instanceId: string;
  powerState: PowerState;
}

export interface StopOptions {
  /** Power off at once instead of asking the guest first. */
  force: boolean;
  /** How long the guest gets to shut down after the ACPI request before it is powered off. */
  timeoutMs: number;
}

/**
 * Every method is idempotent and safe to retry after any failure; callers
 * serialize calls for the same instance (the server's per-instance mutex).
 * Unless stated otherwise, errors other than DriverError are transient
 * (host busy, SSH down) and the caller retries.
 */
export interface HypervisorDriver {
  /** "kvm" or "qemu" (TCG) for libvirt; "fake" for the fake driver. */
  readonly kind: "kvm" | "qemu" | "fake";

  /** What this host offers, measured (or configured) once per call. */
  capacity(): Promise<Capacity>;

  /**
   * Postcondition on success: a defined domain for spec.instanceId runs, with
   * its overlay disk; returns RUNNING. An existing running domain is left
   * unchanged; an existing shut-off domain is started (its disk is kept).
   * Without a domain: spec.reuseRootDisk false (a launch) makes a fresh
   * overlay from the image (replacing a leftover one); reuseRootDisk true (a
   * start) defines the domain over the instance's existing disk and never
   * makes or replaces one, throwing DriverError("MissingDisk") when the disk
   * is not there.
   * A domain defined here carries spec.volumes as virtio disks (serial and
   * QoS as attachVolume gives them), each at the file `volumes` maps its id
   * to (InvalidSpec when one is missing there); an existing domain keeps
   * the volumes it has.
   * Instance store: each of spec.instanceStore is a raw file of sizeGib GiB
   * on the host, a virtio disk of a domain defined here at its target with
   * serial = its name. A launch without a domain makes them all blank
   * (replacing leftovers); a start (reuseRootDisk) of a shut-off or
   * missing domain begins with them blank too (those there wiped, the
   * missing made: scratch is never a reason to fail), so data is gone
   * after any stop, also one the guest did itself without StopInstance; a
   * running domain's are left as they are.
   * Postcondition on failure: whatever this call made (domain, overlay,
   * console log, instance-store disks) is removed, but never a disk it
   * reused, nor a volume. Throws
   * DriverError("InvalidSpec") for a spec that can never work,
   * DriverError("InvalidImage") when the image files are missing or unusable
   * on the host.
   */
  createInstance(spec: InstanceSpec, volumes?: ReadonlyMap<string, DiskSource>): Promise<PowerState>;

  /**
   * Postcondition: the instance's domain has the volume's file `disk` as a
   * virtio disk at attachment.target, with serial = the volume id without
   * its hyphen and attachment.qos as its <iotune>, in the persistent
   * definition and, while the domain runs, in the running guest (hot plug).
   * Attached there already (in either or both): completed, no change
   * otherwise. Throws DriverError("NotFound") without a domain,
   * DriverError("Conflict") when the target holds another disk or the
   * volume is attached at another target, DriverError("InvalidSpec") for a
   * bad attachment; InUse (StorageError) when another guest holds the file.
   */
  attachVolume(instanceId: string, attachment: VolumeAttachment, disk: DiskSource): Promise<void>;

  /**
   * Postcondition: the volume is in neither the persistent nor the live
   * definition of the instance's domain, QEMU no longer holds its file,
   * and its file holds every write the guest made (a live snapshot's
   * overlay is merged back first). A running guest is asked to release
   * the device and waited for up to opts.waitMs (force: see
   * DetachOptions); one that has not let go by then leaves the request
   * standing and the call throws DetachPendingError (a retry waits
   * again). Not attached, or no domain: succeeds.
   */
  detachVolume(instanceId: string, volumeId: string, opts: DetachOptions): Promise<void>;

  /**
   * The live-snapshot hook. When the instance's domain runs with the
   * volume attached: freezes the volume's file without stopping the guest
   * (an external disk-only snapshot sends the guest's writes to
   * volume.overlay; the volume's file becomes its read-only backing),
   * calls take(the volume's file), then merges the overlay back and pivots
   * the guest onto the volume's file (`virsh blockcommit --active --pivot`),
   * removes the overlay and returns take's result. Postcondition: the
   * guest runs on the volume's file again, as before the call, with every
   * write it made; no overlay is left. take therefore sees the volume as
   * it was at one moment during the call; when take fails the overlay is
   * merged back all the same and take's error thrown. A retry after a crash that
   * finds the guest already on this overlay skips the freeze (take gets
   * the same point in time); one that finds it on another snapshot's
   * overlay merges that first. Returns undefined, calling nothing, when
   * the domain does not run or the volume is not in its live definition
   * (the caller snapshots offline); a shut-off domain left on an overlay
   * is merged back first, so the volume's file is then complete.
   */
  snapshotAttachedVolume<T>(instanceId: string, volume: LiveSnapshotVolume, take: (image: string) => Promise<T>): Promise<T | undefined>;

  /**
   * ModifyVolume of a volume attached to the instance's domain (in its
   * persistent or its live definition). Postcondition: the volume is
   * mod.sizeBytes, its data kept, and the disk's <iotune> is mod.qos in
   * each definition that has it; returns true. While the running guest
   * has the disk, QEMU holds the file and grows it (`virsh blockresize`):
   * the guest sees the new size at once, without a reboot. Otherwise
   * nobody holds the file and resizeOffline (the store's resize) is
   * called. Grow only: a size below what the guest has is
   * StorageError("InvalidArgument"), refused before anything changes;
   * the size and QoS it has already: no change (so a retry after a crash
   * finds the grow done or not done, never half). A live snapshot's
   * overlay left by a crash is merged back first, so the volume's own file
   * is what grows. Returns false, changing nothing, when the instance has
   * no domain or the domain does not have the volume (the caller resizes
   * offline). DriverError("InvalidSpec") for a bad QoS.
   */
  modifyAttachedVolume(instanceId: string, mod: VolumeModification, resizeOffline: () => Promise<void>): Promise<boolean>;

  /**
   * Postcondition: the domain runs; returns RUNNING. Running already → no
   * change. Throws DriverError("NotFound") when no domain exists. Without a
   * spec it cannot make a missing instance-store disk (its size is the
   * spec's): createInstance with reuseRootDisk is the start that does.
   */
  startInstance(instanceId: string): Promise<PowerState>;

  /**
   * Postcondition: the domain is shut off and still defined, its disk kept;
   * returns SHUT_OFF, or ABSENT when no domain exists (nothing to stop).
   * Asks the guest to power off (ACPI) and powers it off after timeoutMs;
   * force powers it off at once. Then, whatever the domain's state was,
   * each instance-store disk the instance has is wiped: a blank file of
   * the same size, so the guest reads zeros at its next start (EC2: the
   * instance store does not survive a stop; it does a reboot).
   */
  stopInstance(instanceId: string, opts: StopOptions): Promise<PowerState>;

  /**
   * Postcondition: the guest has been hard-reset (or booted, if it was shut
   * off) and runs; returns RUNNING. A hard reset rather than an ACPI reboot
   * request, because a guest that ignores ACPI would otherwise never reboot.
   * Throws DriverError("NotFound") when no domain exists.
   */
  rebootInstance(instanceId: string): Promise<PowerState>;

  /**
   * Postcondition: no domain, no overlay disk, no console log, no
   * instance-store disk for the instance; returns ABSENT. Succeeds when they are already gone. Attached
   * volumes are detached with the domain, never deleted (a live snapshot's
   * overlay left by a crash is merged into its volume first).
   */
  destroyInstance(instanceId: string): Promise<PowerState>;

  /**
   * The last 64 KiB (at most) of the instance's serial console log, across
   * all its boots; empty when there is no log.
   */
  consoleOutput(instanceId: string): Promise<Buffer>;

  /**
   * Postcondition: no domain and no NIC host side for the instance; its
   * files (overlay disk, console log, instance-store disks) are in the
   * quarantine directory, named with the time they were moved there, and
   * nothing was deleted. Volumes
   * are not the instance's files: none is moved, written or removed. Succeeds
   * when nothing is left. For what the control plane no longer wants (the
   * orphan cleanup); destroyInstance, for a terminate, deletes.
   */
  quarantineInstance(instanceId: string): Promise<void>;

  /** Postcondition: this agent's quarantined files moved there more than `olderThanMs` ago are deleted; returns their names. */
  purgeQuarantine(olderThanMs: number): Promise<string[]>;

  /** Every domain this agent owns (by its name prefix), with its power state. */
  list(): Promise<DomainStatus[]>;

  /** Instance ids that have an overlay disk, console log or instance-store disk of this agent (by its prefix) in its instances directory. */
  listArtifacts(): Promise<string[]>;

  /**
   * Among `instanceIds` (domains the caller saw running), those whose NIC's
   * host side is broken: its tap device is missing (deleted by hand: the
   * guest's NIC has no backend any more), down, or not a port of its
   * bridge. Cheap (one listing of the host's interfaces, no hypervisor
   * call), so the reconcile loop runs it every round. [] without networking.
   */
  brokenInterfaces(instanceIds: readonly string[]): Promise<string[]>;

  /**
   * Postcondition: when the instance's domain runs and its definition has a
   * NIC, that NIC is plugged into the running guest and its tap device
   * exists, is up and is a port of the NIC's bridge, with the instance's
   * bridge, DHCP and firewall in place. The guest keeps running: a missing
   * tap is repaired by hot-unplugging the NIC and plugging the same one
   * (MAC, bridge, tap name, PCI slot) back in, which the guest sees as its
   * NIC replaced. The persistent definition is not changed. Returns what
   * was done, undefined when nothing needed doing (or there is no running
   * domain with a NIC). Throws, having done what it could, when the guest
   * does not release its old NIC in time; a later call continues.
   */
  repairInterface(instanceId: string): Promise<InterfaceRepair | undefined>;

  /** Releases host connections. */
  close(): Promise<void>;
}

/** What repairInterface did. */
export interface InterfaceRepair {
  /**
   * replugged: tap missing, NIC unplugged from the guest and plugged back in;
   * plugged: the NIC was missing from the running guest and was plugged in;
   * reattached: the tap existed and was only put back on its bridge, or up.
   */
  action: "replugged" | "plugged" | "reattached";
  tap: string;
  bridge: string;
  durationMs: number;
}

/** Failures that retrying cannot fix, and the lookup of something that is not there. */
export type DriverErrorKind = "InvalidSpec" | "InvalidImage" | "MissingDisk" | "NotFound" | "Conflict";

export class DriverError extends Error {
  constructor(
    readonly kind: DriverErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "DriverError";
  }
}

/** A running guest has not released a volume yet; the unplug request stands and a retry waits again (transient). */
export class DetachPendingError extends Error {
  constructor(message: string) {
    super(`Detaching: ${message}`);
    this.name = "DetachPendingError";
  }
}

/** How much console output a caller gets: EC2 GetConsoleOutput returns the last 64 KiB. */
export const CONSOLE_TAIL_BYTES = 64 * 1024;
