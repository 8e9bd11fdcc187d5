// What the core runs on (one `Core` per process) and what one request adds
// to it (`RequestContext`: who is asking). Transports and the worker build
// these; operations and lifecycle steps only ever see them. Everything that
// leaves the process goes through a port: the database pool, the lifecycle
// queue, and the host agents.
import type { Logger } from "@cirrus/common";
import type { LifecycleStep } from "@cirrus/common/queue";
import type { agent } from "@cirrus/proto";
import type { LimitFunction } from "p-limit";
import type { Pool } from "pg";
import type { CoreConfig } from "./config.js";
import type { InstanceTypeSpec } from "./instanceTypes.js";

/** Who makes a request. Every query an operation runs is scoped to `accountId`. */
export interface Principal {
  /** The 12-digit account the caller acts as. */
  accountId: string;
  /** The cloud's operator, who may manage hosts and accounts. */
  operator: boolean;
}

/** How the control plane reaches a host's agent. */
export interface HostEndpoint {
  id: string;
  endpoint: string;
  secret: string;
}

/**
 * The host agents, as the core sees them (HostAgent in agent.proto has the
 * postconditions). Every method rejects when the agent cannot be reached or
 * refuses; `isPermanent` tells which refusals retrying cannot fix.
 */
export interface AgentPort {
  createInstance(host: HostEndpoint, spec: agent.InstanceSpec): Promise<unknown>;
  stopInstance(host: HostEndpoint, instanceId: string, force: boolean): Promise<unknown>;
  rebootInstance(host: HostEndpoint, instanceId: string): Promise<unknown>;
  destroyInstance(host: HostEndpoint, instanceId: string): Promise<unknown>;
  applyHostState(host: HostEndpoint, state: agent.HostState): Promise<unknown>;
  consoleOutput(host: HostEndpoint, instanceId: string): Promise<Buffer>;
  createVolume(host: HostEndpoint, req: agent.CreateVolumeRequest): Promise<agent.VolumeStatus>;
  deleteVolume(host: HostEndpoint, volumeId: string): Promise<agent.VolumeStatus>;
  attachVolume(host: HostEndpoint, instanceId: string, attachment: agent.VolumeAttachment): Promise<agent.VolumeStatus>;
  detachVolume(host: HostEndpoint, req: agent.DetachVolumeRequest): Promise<agent.VolumeStatus>;
  modifyVolume(host: HostEndpoint, req: agent.ModifyVolumeRequest): Promise<agent.VolumeStatus>;
  createSnapshot(host: HostEndpoint, req: agent.CreateSnapshotRequest): Promise<agent.SnapshotStatus>;
  deleteSnapshot(host: HostEndpoint, snapshotId: string): Promise<agent.SnapshotStatus>;
  copySnapshot(host: HostEndpoint, req: agent.CopySnapshotRequest): Promise<agent.SnapshotStatus>;
  /** True when `err` (from one of the calls above) says the request itself is wrong, so retrying cannot help. */
  isPermanent(err: unknown): boolean;
}

/** Hands lifecycle steps to the workers. Idempotent per batch: the same steps enqueued twice run once while queued. */
export interface LifecyclePort {
  enqueue(batches: readonly (readonly LifecycleStep[])[]): Promise<void>;
}

/** Everything the core runs on; one per process. */
export interface Core {
  db: Pool;
  config: CoreConfig;
  instanceTypes: ReadonlyMap<string, InstanceTypeSpec>;
  log: Logger;
  lifecycle: LifecyclePort;
  agents: AgentPort;
  /** Runs a placement (RunInstances' transaction) once fewer than CIRRUS_PLACEMENT_CONCURRENCY others run, in arrival order. */
  placements: LimitFunction;
  /**
   * Tells these hosts, after the commit, that their state changed (which the
   * change also marked in its transaction, hostState.ts): compiles it and
   * pushes it now, best effort; a missed push is caught up by the next
   * heartbeat.
   */
  notifyHosts(hostIds: readonly string[]): void;
}

/** One request: the core, who asks, and a logger that says which request. */
export interface RequestContext extends Core {
  principal: Principal;
  requestId: string;
}
