// The two faces of host networking: what the gRPC server and the heartbeat
// loop drive (the whole host's state), and what the libvirt driver needs
// around one instance's lifecycle.
import type { agent } from "@cirrus/proto";
import type { ValidInterface } from "./state.js";

export interface NetworkStateTarget {
  /**
   * When `state.revision` is newer than the last state applied: afterwards
   * bridges, DHCP, firewall chains, elastic-IP NAT and metadata answers on
   * this host are exactly `state.network` for the instances it names (plus
   * a deny-all firewall for instances with a NIC it does not name), the NICs
   * of `state.instances` are known, and `current()` is `state`. A state
   * that is not newer changes nothing and resolves with undefined (a newer
   * one was applied). A malformed entry is left out for its own instance
   * only (validateNetworkState), logged, and the rest applied. The resolved
   * value is for logs and tests only.
   */
  applyHostState(state: agent.HostState): Promise<unknown>;
  /** The last state applied; undefined before the first (then nothing is known to be unwanted). */
  current(): agent.HostState | undefined;
  /**
   * One reconcile round: keeps the NICs of instances with a domain
   * (`domains`) and re-applies the current state, repairing whatever
   * drifted on the host.
   */
  reconcile(domains: readonly string[]): Promise<unknown>;
  close(): Promise<void>;
}

/** Keeps the newest host state seen: applying in revision order, never an older one after a newer one. */
export class HostStateRevisions {
  private latest: agent.HostState | undefined;

  /** True (and `state` becomes current) when its revision is newer than the current one's. */
  accept(state: agent.HostState): boolean {
    if (this.latest && state.revision <= this.latest.revision) return false;
    this.latest = state;
    return true;
  }

  get current(): agent.HostState | undefined {
    return this.latest;
  }
}

/** Names the domain XML uses for an instance's NIC. */
export interface AttachedInterface {
  bridge: string;
  tap: string;
}

export interface InstanceNetworking {
  /**
   * Postcondition: the bridge of the NIC's subnet exists, is up and holds
   * the gateway address; DHCP answers the NIC's MAC with its private
   * address; the instance's firewall chains exist (deny-all until the
   * control plane's rules for it arrive). Throws DriverError("InvalidSpec")
   * when the NIC conflicts with this host's other subnets.
   */
  attach(instanceId: string, nic: ValidInterface): Promise<AttachedInterface>;
  /** Postcondition: when the instance has a NIC, its bridge and DHCP exist as after attach (before a domain starts). */
  prepare(instanceId: string): Promise<void>;
  /** Postcondition: no firewall chains, DHCP entry or elastic-IP rules remain for the instance. */
  detach(instanceId: string): Promise<void>;
  /**
   * The tap and bridge of the instance's NIC as far as this host knows
   * (attached, or learned from a host state or the saved registry);
   * undefined: no NIC known. Reads memory only.
   */
  interfaceOf(instanceId: string): AttachedInterface | undefined;
}

/** For the fake driver, which has no network: states are kept in revision order, nothing else. */
export class UnmanagedNetwork implements NetworkStateTarget {
  private readonly revisions = new HostStateRevisions();

  async applyHostState(state: agent.HostState): Promise<boolean> {
    return this.revisions.accept(state);
  }

  current(): agent.HostState | undefined {
    return this.revisions.current;
  }

  async reconcile(): Promise<void> {}

  async close(): Promise<void> {}
}

