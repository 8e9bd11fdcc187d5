// Which instance has which NIC on this host. HostNetworkState names
// instances but not their subnets or addresses; those come with the
// instance's spec (CreateInstance, and every heartbeat's desired instances),
// so the agent remembers them here. The registry is saved on the host, so a
// restarted agent can keep every instance's firewall in place before the
// first heartbeat arrives.
import { cidrText, isId, overlaps } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import { validateInterface, type ValidInterface } from "./state.js";

export interface RegisteredInterface extends ValidInterface {
  instanceId: string;
}

/** The saved form: the NIC as the control plane sent it, with its instance. */
type SavedInterface = agent.NetworkInterface & { instanceId: string };

export class InterfaceRegistry {
  private readonly nics = new Map<string, RegisteredInterface>();
  /** When each instance was last known to be wanted (or to have a domain). */
  private readonly seen = new Map<string, number>();
  /** Instances with a domain on the host, as the last reconcile round found them: their NICs are never dropped. */
  private domains = new Set<string>();
  private dirty = false;

  constructor(private readonly now: () => number = Date.now) {}

  get(instanceId: string): RegisteredInterface | undefined {
    return this.nics.get(instanceId);
  }

  all(): RegisteredInterface[] {
    return [...this.nics.values()];
  }

  /** Whether set/delete/prune changed anything since the last markSaved(). */
  get changed(): boolean {
    return this.dirty;
  }

  /**
   * Records the instance's NIC and marks it seen. Another instance holding
   * the same address or MAC in that subnet is dropped: the control plane
   * has given them to this one, so the other is a leftover, unless that
   * other instance's domain exists (its guest uses the address now): then
   * this NIC is refused instead. Returns the instance ids dropped. Throws
   * when the address or MAC is a live domain's, or the subnet conflicts with
   * a known one (same id, other CIDR or gateway; or another id with an
   * overlapping CIDR, which one host cannot route).
   */
  set(instanceId: string, nic: ValidInterface): string[] {
    for (const other of this.nics.values()) {
      if (other.instanceId === instanceId) continue;
      const sameSubnet = other.subnetId === nic.subnetId;
      if (sameSubnet && (cidrText(other.subnet) !== cidrText(nic.subnet) || other.gatewayIp !== nic.gatewayIp)) {
        throw new Error(`subnet ${nic.subnetId} is ${cidrText(other.subnet)} via ${other.gatewayIp} for ${other.instanceId}, not ${cidrText(nic.subnet)} via ${nic.gatewayIp}`);
      }
      if (!sameSubnet && overlaps(other.subnet, nic.subnet)) {
        throw new Error(`subnet ${nic.subnetId} (${cidrText(nic.subnet)}) overlaps ${other.subnetId} (${cidrText(other.subnet)}) of ${other.instanceId}; one host cannot serve both`);
      }
    }
    const evicted = this.all()
      .filter((o) => o.instanceId !== instanceId && o.subnetId === nic.subnetId && (o.privateIp === nic.privateIp || o.mac === nic.mac))
      .map((o) => o.instanceId);
    const live = evicted.find((id) => this.domains.has(id));
    if (live) throw new Error(`address ${nic.privateIp} or MAC ${nic.mac} in ${nic.subnetId} belongs to ${live}, whose domain exists on this host`);
    for (const id of evicted) this.delete(id);
    const before = this.nics.get(instanceId);
    const entry: RegisteredInterface = { instanceId, ...nic };
    if (!before || JSON.stringify(before) !== JSON.stringify(entry)) {
      this.nics.set(instanceId, entry);
      this.dirty = true;
    }
    this.seen.set(instanceId, this.now());
    return evicted;
  }

  /** Marks these instances as still wanted. */
  touch(instanceIds: Iterable<string>): void {
    const now = this.now();
    for (const id of instanceIds) if (this.nics.has(id)) this.seen.set(id, now);
  }

  /** The instances that have a domain on the host now: marked wanted, and their NICs kept whatever else asks. */
  domainsAre(instanceIds: readonly string[]): void {
    this.domains = new Set(instanceIds);
    this.touch(instanceIds);
  }

  delete(instanceId: string): void {
    if (this.nics.delete(instanceId)) this.dirty = true;
    this.seen.delete(instanceId);
  }

  /**
   * Drops the NICs of instances without a domain not seen for more than graceMs (so a NIC
   * registered in this very moment survives even a zero grace); returns
   * their ids.
   */
  prune(graceMs: number): string[] {
    const cutoff = this.now() - graceMs;
    const gone = [...this.nics.keys()].filter((id) => !this.domains.has(id) && (this.seen.get(id) ?? 0) < cutoff);
    for (const id of gone) this.delete(id);
    return gone;
  }

  /** The registry as JSON for the host file. */
  serialize(): string {
    const saved: SavedInterface[] = this.all().map((n) => ({
      instanceId: n.instanceId,
      subnetId: n.subnetId,
      subnetCidr: cidrText(n.subnet),
      gatewayIp: n.gatewayIp,
      privateIp: n.privateIp,
      macAddress: n.mac,
    }));
    return `${JSON.stringify({ interfaces: saved }, null, 1)}\n`;
  }

  /** Clears `changed`, once serialize()'s output is safely stored. */
  markSaved(): void {
    this.dirty = false;
  }

  /**
   * Loads a saved registry (entries count as seen now). Entries are
   * validated again, since the file is outside the agent's control; returns
   * a description of each one dropped.
   */
  load(json: string): string[] {
    const problems: string[] = [];
    const saved = (JSON.parse(json) as { interfaces?: SavedInterface[] }).interfaces ?? [];
    for (const s of saved) {
      try {
        if (!isId("i", String(s.instanceId))) throw new Error("bad instance id");
        this.set(s.instanceId, validateInterface({ subnetId: String(s.subnetId), subnetCidr: String(s.subnetCidr), gatewayIp: String(s.gatewayIp), privateIp: String(s.privateIp), macAddress: String(s.macAddress) }));
      } catch (err) {
        problems.push(`${JSON.stringify(s).slice(0, 200)}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.dirty = false;
    return problems;
  }
}
