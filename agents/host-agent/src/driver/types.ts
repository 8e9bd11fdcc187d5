// The hypervisor boundary (design principle 4): one interface with written
// postconditions. The libvirt driver is what users run; the fake driver
// serves scheduler and scale simulations.
import type { agent } from "@cirrus/proto";

export type PowerState = agent.PowerState;
export type InstanceSpec = agent.InstanceSpec;

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
   * Postcondition on failure: whatever this call made (domain, overlay, console
   * log) is removed, but never a disk it reused. Throws
   * DriverError("InvalidSpec") for a spec that can never work,
   * DriverError("InvalidImage") when the image files are missing or unusable
   * on the host.
   */
  createInstance(spec: InstanceSpec): Promise<PowerState>;

  /**
   * Postcondition: the domain runs; returns RUNNING. Running already → no
   * change. Throws DriverError("NotFound") when no domain exists.
   */
  startInstance(instanceId: string): Promise<PowerState>;

  /**
   * Postcondition: the domain is shut off and still defined, its disk kept;
   * returns SHUT_OFF, or ABSENT when no domain exists (nothing to stop).
   * Asks the guest to power off (ACPI) and powers it off after timeoutMs;
   * force powers it off at once.
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
   * Postcondition: no domain, no overlay disk, no console log for the
   * instance; returns ABSENT. Succeeds when they are already gone.
   */
  destroyInstance(instanceId: string): Promise<PowerState>;

  /**
   * The last 64 KiB (at most) of the instance's serial console log, across
   * all its boots; empty when there is no log.
   */
  consoleOutput(instanceId: string): Promise<Buffer>;

  /**
   * Postcondition: no domain and no NIC host side for the instance; its
   * files (overlay disk, console log) are in the quarantine directory, named
   * with the time they were moved there, and nothing was deleted. Succeeds
   * when nothing is left. For what the control plane no longer wants (the
   * orphan cleanup); destroyInstance, for a terminate, deletes.
   */
  quarantineInstance(instanceId: string): Promise<void>;

  /** Postcondition: this agent's quarantined files moved there more than `olderThanMs` ago are deleted; returns their names. */
  purgeQuarantine(olderThanMs: number): Promise<string[]>;

  /** Every domain this agent owns (by its name prefix), with its power state. */
  list(): Promise<DomainStatus[]>;

  /** Instance ids that have an overlay disk or console log of this agent (by its prefix) in its instances directory. */
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
export type DriverErrorKind = "InvalidSpec" | "InvalidImage" | "MissingDisk" | "NotFound";

export class DriverError extends Error {
  constructor(
    readonly kind: DriverErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "DriverError";
  }
}

/** How much console output a caller gets: EC2 GetConsoleOutput returns the last 64 KiB. */
export const CONSOLE_TAIL_BYTES = 64 * 1024;
