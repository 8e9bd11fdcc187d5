// Host networking for the libvirt driver: brings bridges, DHCP, iptables
// chains and the metadata service to the state the control plane asked
// for. Every entry point (ApplyHostState, the heartbeat's reconcile
// round, an instance's create/start/destroy) runs one full, idempotent sync
// under one lock, so they never interleave and each leaves the host
// consistent. A sync that finds everything in place only reads (a handful of
// commands, tens of milliseconds), so running it on every heartbeat is cheap
// and repairs anything changed behind the agent's back.
//
// What the host gets, per subnet with instances here:
//   - a bridge cb<13 hex> (names.ts) holding the gateway address, IPv6 off;
//   - a dnsmasq on it with static leases only (dhcp.ts);
//   - per instance, a tap ct<13 hex> made by libvirt on that bridge, and
//     iptables chains P-<12 hex>-IN/-OUT (firewall-rules.ts has the layout);
//   - NAT for elastic IPs and 169.254.169.254 → gateway:CIRRUS_METADATA_PORT,
//     where the agent's metadata service answers (metadata/);
//   - an egress guard: what a guest opens leaves through a non-Cirrus
//     interface only translated (elastic IP, or the outbound-NAT uplink).
// Nothing is torn down when the agent stops: guests keep their network.
// A tap deleted or unplugged from its bridge by hand is not repaired here
// (the tap is libvirt's): the driver's repairInterface does it, from the
// reconcile round that follows each heartbeat's sync.
//
// What the control plane must send:
//   - InstanceSpec.network for every instance with a NIC, in CreateInstance
//     and in the host state's instances (the agent learns subnets and
//     addresses only from there; HostNetworkState names instances only);
//   - HostNetworkState listing every instance on this host with a NIC in
//     `firewalls` (an instance left out gets a deny-all firewall: no ingress,
//     egress only to DHCP and metadata) and in `metadata`; security-group
//     sources resolved to /32s; the EC2 default egress (all, 0.0.0.0/0)
//     spelled out as a rule; elastic IPs only for instances on this host.
//   - both in one HostState with a per-host revision, pushed with
//     ApplyHostState after each change (already committed) and sent again in
//     a heartbeat's answer when the agent's revision is behind; states are
//     applied in revision order, and the current one is re-applied after
//     every heartbeat.
// The upstream network must route elastic IPs to this host (the agent does
// not answer ARP for them), and subnets on one host must not overlap.
import { type Cidr, type Logger, contains, parseCidr } from "@cirrus/common";
import { posix } from "node:path";
import type { agent } from "@cirrus/proto";
import { DriverError } from "../driver/types.js";
import { KeyedMutex } from "../keyed-mutex.js";
import { readHostFile, writeHostFile } from "../runner/host-files.js";
import type { CommandRunner } from "../runner/types.js";
import { ensureBridge, ensureKernelSwitches, listBridges, removeBridge, type HostBridge, type WantedBridge } from "./bridges.js";
import { DhcpServers } from "./dhcp.js";
import { bridgeRules, filterRules, natRules, type FirewallPlan, type PlannedElasticIp } from "./firewall-rules.js";
import { applyTable, saveTable } from "./iptables.js";
import { MetadataListeners, metadataHandler } from "./metadata/service.js";
import { TokenIssuer } from "./metadata/tokens.js";
import { bridgeName, isOwnChain, tapName } from "./names.js";
import { InterfaceRegistry } from "./registry.js";
import { EMPTY_NETWORK_STATE, validateInterface, validateNetworkState, type ValidInterface, type ValidNetworkState } from "./state.js";
import { HostStateRevisions, type AttachedInterface, type InstanceNetworking, type NetworkStateTarget } from "./types.js";

export interface HostNetworkOptions {
  runner: CommandRunner;
  /** Directory on the runner's host for dnsmasq's files and the saved NIC registry. */
  dir: string;
  /** Chain prefix and ownership tag (see names.ts); distinct per agent on one host. */
  prefix: string;
  /** The metadata service; undefined: none (the agent is not on the host it drives). */
  metadata?: { port: number; v2Required: boolean; userData(instanceId: string): Promise<Buffer> };
  /** Uplink interface for outbound NAT of guest traffic; undefined: none. */
  outboundNat?: string;
  /** Ranges no guest may open connections to (the control plane's, the agents'); 169.254.0.0/16 is always one. */
  management: readonly Cidr[];
  /** How long an unwanted NIC, or a bridge without NICs, is kept before removal. */
  orphanGraceMs: number;
  log: Logger;
  now?: () => number;
}

/** What one sync changed; for logs and tests. */
export interface SyncReport {
  filterChanged: boolean;
  natChanged: boolean;
  bridgeChanged: boolean;
  bridgesCreated: string[];
  bridgesRemoved: string[];
  dhcpStarted: string[];
  /** Instances whose NIC was dropped for being unwanted past the grace period. */
  forgotten: string[];
}

const LOCK = "host-network";
const EMPTY_NETWORK: agent.HostNetworkState = { firewalls: [], elasticIps: [], metadata: [] };

export class HostNetwork implements NetworkStateTarget, InstanceNetworking {
  private state: ValidNetworkState = EMPTY_NETWORK_STATE;
  private readonly registry: InterfaceRegistry;
  private readonly dhcp: DhcpServers;
  private readonly listeners: MetadataListeners | undefined;
  private readonly lock = new KeyedMutex();
  private readonly now: () => number;
  private readonly registryPath: string;
  private loaded = false;
  /** When each of our bridges without NICs was first seen so. */
  private readonly emptySince = new Map<string, number>();
  /** The bridges present after the last sync, for the metadata service's caller lookup. */
  private present: WantedBridge[] = [];
  /** The host state applied last, by revision. */
  private readonly revisions = new HostStateRevisions();
  /** Elastic IPs already reported as unmappable ("public>instance"), so each is logged once. */
  private readonly unmappable = new Set<string>();

  constructor(private readonly opts: HostNetworkOptions) {
    this.now = opts.now ?? Date.now;
    this.registry = new InterfaceRegistry(this.now);
    this.dhcp = new DhcpServers(opts.runner, opts.dir);
    this.registryPath = posix.join(opts.dir, "interfaces.json");
    if (opts.metadata) {
      const handler = metadataHandler({ identify: (l, r) => this.identify(l, r), userData: opts.metadata.userData, v2Required: opts.metadata.v2Required, tokens: new TokenIssuer(), log: opts.log });
      this.listeners = new MetadataListeners(handler, opts.metadata.port);
    }
  }

  /** See NetworkStateTarget.applyHostState; resolves with what changed, or undefined for a state not newer than the current one. */
  applyHostState(input: agent.HostState): Promise<SyncReport | undefined> {
    const { state, problems } = validateNetworkState(input.network ?? EMPTY_NETWORK);
    const nics: Array<[string, ValidInterface]> = [];
    for (const spec of input.instances) {
      if (!spec.network) continue;
      try {
        nics.push([spec.instanceId, validateInterface(spec.network)]);
      } catch (err) {
        this.opts.log.error({ instanceId: spec.instanceId, err: String(err) }, "host state names a malformed NIC; ignoring it");
      }
    }
    return this.serialized(async () => {
      if (!this.revisions.accept(input)) return undefined;
      // Only the entries' own instances lose them (a deny-all firewall, no elastic IP or metadata); the rest applies.
      for (const p of problems) this.opts.log.error({ instanceId: p.instanceId, revision: input.revision, err: p.problem }, "host state entry refused; left out for its instance only");
      for (const [instanceId, nic] of nics) {
        try {
          this.register(instanceId, nic);
        } catch (err) {
          this.opts.log.error({ instanceId, err: String(err) }, "host state names a NIC this host cannot serve; ignoring it");
        }
      }
      this.adopt(state);
      return this.sync();
    });
  }

  current(): agent.HostState | undefined {
    return this.revisions.current;
  }

  /** See NetworkStateTarget.reconcile; resolves with what changed. */
  reconcile(domains: readonly string[]): Promise<SyncReport> {
    return this.serialized(() => {
      this.registry.domainsAre(domains);
      return this.sync();
    });
  }

  async attach(instanceId: string, nic: ValidInterface): Promise<AttachedInterface> {
    await this.serialized(() => {
      try {
        this.register(instanceId, nic);
      } catch (err) {
        throw new DriverError("InvalidSpec", `network: ${err instanceof Error ? err.message : String(err)}`);
      }
      return this.sync();
    });
    return { bridge: bridgeName(nic.subnetId), tap: tapName(instanceId) };
  }

  async prepare(instanceId: string): Promise<void> {
    await this.serialized(async () => {
      if (!this.registry.get(instanceId)) return undefined;
      this.registry.touch([instanceId]);
      return this.sync();
    });
  }

  async detach(instanceId: string): Promise<void> {
    await this.serialized(async () => {
      if (!this.registry.get(instanceId)) return undefined;
      this.registry.delete(instanceId);
      return this.sync();
    });
  }

  interfaceOf(instanceId: string): AttachedInterface | undefined {
    const nic = this.registry.get(instanceId);
    return nic && { bridge: bridgeName(nic.subnetId), tap: tapName(instanceId) };
  }

  /** Stops the metadata service. Bridges, DHCP and rules stay: guests keep their network while the agent is down. */
  async close(): Promise<void> {
    await this.listeners?.close();
  }

  /** The metadata of the instance at `remoteAddress` on the bridge whose gateway is `localAddress`. */
  private identify(localAddress: string, remoteAddress: string): agent.InstanceMetadata | undefined {
    const bridge = this.present.find((b) => b.gatewayIp === localAddress);
    if (!bridge) return undefined;
    const nic = this.registry.all().find((n) => n.subnetId === bridge.subnetId && n.privateIp === remoteAddress);
    return nic && this.state.metadata.get(nic.instanceId);
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run(LOCK, fn);
  }

  private adopt(state: ValidNetworkState): void {
    this.state = state;
    this.registry.touch([...state.firewalls.keys(), ...state.metadata.keys(), ...state.elasticIps.map((e) => e.instanceId)]);
  }

  private register(instanceId: string, nic: ValidInterface): void {
    for (const displaced of this.registry.set(instanceId, nic)) {
      this.opts.log.warn({ instanceId: displaced, by: instanceId, privateIp: nic.privateIp }, "NIC displaced by a newer instance with its address or MAC");
    }
  }

  /** Reads the registry an earlier run saved, once, and makes the directory dnsmasq reads from. */
  private async load(): Promise<void> {
    if (this.loaded) return;
    // 0755: dnsmasq drops privileges and must still read its hosts file on SIGHUP.
    await this.opts.runner.run(["mkdir", "-p", "-m", "0755", "--", this.opts.dir]);
    const saved = await readHostFile(this.opts.runner, this.registryPath);
    if (saved !== undefined) {
      for (const problem of this.registry.load(saved)) this.opts.log.error({ problem }, `dropped an invalid entry of ${this.registryPath}`);
    }
    this.loaded = true;
  }

  /**
   * Brings the host to (state, registry). Precondition: holds the lock.
   * The firewall goes first and its failure is fatal, since it is what keeps
   * guests apart; every later step (a bridge, a dnsmasq, the metadata
   * listeners…) is tried even when another failed, and the failures are
   * thrown together at the end.
   */
  private async sync(): Promise<SyncReport> {
    const { runner, log, prefix } = this.opts;
    await this.load();
    const failures: string[] = [];
    const attempt = async (what: string, step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (err) {
        failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    const report: SyncReport = { filterChanged: false, natChanged: false, bridgeChanged: false, bridgesCreated: [], bridgesRemoved: [], dhcpStarted: [], forgotten: this.registry.prune(this.opts.orphanGraceMs) };
    if (report.forgotten.length > 0) log.warn({ instanceIds: report.forgotten, graceMs: this.opts.orphanGraceMs }, "forgot NICs unwanted past the grace period");

    const nics = this.registry.all();
    const wanted = new Map<string, WantedBridge>();
    for (const n of nics) wanted.set(n.subnetId, { name: bridgeName(n.subnetId), subnetId: n.subnetId, subnet: n.subnet, gatewayIp: n.gatewayIp });
    // The three reads are independent: one round of waiting instead of three.
    const [onHost, savedFilter, savedNat, savedBridge] = await Promise.all([
      listBridges(runner, prefix), saveTable(runner, "ipv4", "filter"), saveTable(runner, "ipv4", "nat"), saveTable(runner, "bridge", "filter"),
    ]);
    const { lingering, expired } = this.emptyBridges(onHost, new Set([...wanted.values()].map((b) => b.name)));
    const present = [...wanted.values(), ...lingering];

    // Rules may name interfaces that do not exist yet; they match once the interfaces appear.
    const plan = this.firewallPlan(present);
    const isOwn = (chain: string) => isOwnChain(prefix, chain);
    report.filterChanged = await applyTable(runner, filterRules(plan), isOwn, savedFilter);
    report.natChanged = await applyTable(runner, natRules(plan), isOwn, savedNat);
    report.bridgeChanged = await applyTable(runner, bridgeRules(plan), isOwn, savedBridge);

    await attempt("kernel switches", () => ensureKernelSwitches(runner));
    for (const b of present) {
      await attempt(`bridge ${b.name}`, async () => {
        const current = onHost.find((h) => h.name === b.name);
        await ensureBridge(runner, prefix, b, current);
        if (!current) {
          report.bridgesCreated.push(b.name);
          // A dnsmasq left from an earlier bridge of this name is bound to a device that no longer exists.
          await this.dhcp.stop(b.name);
        }
        const leases = nics.filter((n) => n.subnetId === b.subnetId).map((n) => ({ mac: n.mac, ip: n.privateIp }));
        if (await this.dhcp.ensure(b, leases)) report.dhcpStarted.push(b.name);
      });
    }
    // After the rules stopped naming them.
    for (const name of expired) {
      await attempt(`removing bridge ${name}`, async () => {
        await this.dhcp.stop(name);
        await removeBridge(runner, name);
        this.emptySince.delete(name);
        report.bridgesRemoved.push(name);
      });
    }
    this.present = present;
    if (this.registry.changed) {
      await attempt(`saving ${this.registryPath}`, async () => {
        await writeHostFile(runner, this.registryPath, this.registry.serialize());
        this.registry.markSaved();
      });
    }
    const listeners = this.listeners;
    if (listeners) await attempt("metadata service", () => listeners.sync(present.map((b) => b.gatewayIp)));

    const { bridgesCreated, bridgesRemoved, dhcpStarted, filterChanged, natChanged, bridgeChanged } = report;
    if (bridgesCreated.length + bridgesRemoved.length + dhcpStarted.length > 0 || filterChanged || natChanged || bridgeChanged) {
      log.info({ bridgesCreated, bridgesRemoved, dhcpStarted, filterChanged, natChanged, bridgeChanged }, "host network changed");
    }
    if (failures.length > 0) throw new Error(`host network partly applied (the firewall is in place): ${failures.join("; ")}`);
    return report;
  }

  /**
   * Our bridges on the host that no NIC needs: `lingering` ones are kept
   * (with the subnet their address says) until they have been empty for
   * the grace period; `expired` ones are due for removal now.
   */
  private emptyBridges(onHost: readonly HostBridge[], wanted: ReadonlySet<string>): { lingering: WantedBridge[]; expired: string[] } {
    const now = this.now();
    const lingering: WantedBridge[] = [];
    const expired: string[] = [];
    for (const name of this.emptySince.keys()) if (wanted.has(name) || !onHost.some((h) => h.name === name)) this.emptySince.delete(name);
    for (const h of onHost) {
      if (h.foreign || !h.subnetId || wanted.has(h.name)) continue;
      const since = this.emptySince.get(h.name) ?? now;
      this.emptySince.set(h.name, since);
      const address = h.addresses[0];
      const subnet = address ? parseCidr(address) : undefined;
      if (now - since >= this.opts.orphanGraceMs || !address || !subnet) expired.push(h.name);
      else lingering.push({ name: h.name, subnetId: h.subnetId, subnet, gatewayIp: address.split("/")[0]! });
    }
    return { lingering, expired };
  }

  private firewallPlan(bridges: readonly WantedBridge[]): FirewallPlan {
    const elasticIps: PlannedElasticIp[] = [];
    const unmappable = new Set<string>();
    for (const e of this.state.elasticIps) {
      const nic = this.registry.get(e.instanceId);
      if (nic && contains(nic.subnet, e.privateIp)) {
        elasticIps.push({ publicIp: e.publicIp, privateIp: e.privateIp, subnet: nic.subnet });
        continue;
      }
      const key = `${e.publicIp}>${e.instanceId}`;
      unmappable.add(key);
      if (!this.unmappable.has(key)) this.opts.log.warn({ instanceId: e.instanceId, publicIp: e.publicIp, privateIp: e.privateIp }, "elastic IP for an instance without a NIC in that subnet on this host; not mapped");
    }
    this.unmappable.clear();
    for (const key of unmappable) this.unmappable.add(key);
    return {
      prefix: this.opts.prefix,
      bridges,
      instances: this.registry.all().map((n) => {
        const fw = this.state.firewalls.get(n.instanceId);
        return { instanceId: n.instanceId, bridge: bridgeName(n.subnetId), tap: tapName(n.instanceId), privateIp: n.privateIp, mac: n.mac, ingress: fw?.ingress ?? [], egress: fw?.egress ?? [] };
      }),
      elasticIps,
      metadataPort: this.opts.metadata?.port,
      outboundNat: this.opts.outboundNat,
      management: this.opts.management,
    };
  }
}
