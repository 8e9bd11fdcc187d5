// The two faces of host networking: what the gRPC server and the heartbeat
// loop drive (the whole host's state), and what the libvirt driver needs
// around one instance's lifecycle.
import type { agent } from "@cirrus/proto";
import { validateNetworkState, type ValidInterface } from "./state.js";

export interface NetworkStateTarget {
  /**
   * Postcondition: bridges, DHCP, firewall chains, elastic-IP NAT and
   * metadata answers on this host are exactly `state` for the instances it
   * names (plus a deny-all firewall for instances with a NIC it does not
   * name), and nothing for others. Throws NetworkStateError, having changed
   * nothing, when the state is malformed. The resolved value is for logs
   * and tests only.
   */
  applyNetworkState(state: agent.HostNetworkState): Promise<unknown>;
  /**
   * One reconcile round after a heartbeat sent at `requestedAt` (ms since
   * the epoch): learns the NICs of the desired instances, keeps the NICs of
   * instances with a domain (`domains`), and applies `response.network`
   * unless an ApplyNetworkState arrived after the heartbeat was sent (its
   * state is newer), or the last state when absent, repairing whatever
   * drifted. Throws NetworkStateError for a malformed state (NICs that fail
   * validation are logged and skipped).
   */
  reconcile(response: agent.HeartbeatResponse, domains: readonly string[], requestedAt: number): Promise<unknown>;
  close(): Promise<void>;
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
   * (attached, or learned from a heartbeat or the saved registry);
   * undefined: no NIC known. Reads memory only.
   */
  interfaceOf(instanceId: string): AttachedInterface | undefined;
}

/** For the fake driver, which has no network: states are validated (so simulations catch malformed ones) and ignored. */
export class UnmanagedNetwork implements NetworkStateTarget {
  async applyNetworkState(state: agent.HostNetworkState): Promise<void> {
    validateNetworkState(state);
  }

  async reconcile(): Promise<void> {}

  async close(): Promise<void> {}
}
