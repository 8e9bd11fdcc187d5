// The HostAgent gRPC service: authenticates the control plane's workers with
// the host secret, validates ids, serializes calls per instance, volume and
// snapshot (one KeyedMutex, shared with the reconcile loop; taken in the
// order instance, volume, snapshot) and maps driver and storage failures
// onto statuses the worker can act on:
//   INVALID_ARGUMENT     malformed instance/volume/snapshot id, missing spec,
//                        bad attachment target or QoS, StorageError InvalidArgument (a size, a shrink)
//   UNAUTHENTICATED      missing or wrong host secret
//   FAILED_PRECONDITION  "InvalidSpec: ..." / "InvalidImage: ..." / "MissingDisk: ..." /
//                        "Conflict: ..." (driver), "InUse: ..." / "Conflict: ..." /
//                        "Unsupported: ..." / "InvalidImage: ..." (storage): retrying cannot help
//   NOT_FOUND            "NotFound: ..." (no domain for start/reboot/attach; no volume or snapshot)
//   UNAVAILABLE          "Busy: ..." (another host holds the volume's lock), "Detaching: ..."
//                        (the guest has not released the volume yet): retry later
//   INTERNAL             anything else (transient: the worker retries)
//
// CreateSnapshot naming an instance whose domain runs with the volume
// attached takes it live (HypervisorDriver.snapshotAttachedVolume); any
// other is offline, refused with InUse while a guest holds the volume.
// ModifyVolume likewise: naming the domain the volume is attached to, the
// driver grows it (live while the guest runs) and sets its QoS
// (HypervisorDriver.modifyAttachedVolume); otherwise the store grows it
// offline and the QoS waits for the next attach, which carries it.
import { createHash, timingSafeEqual } from "node:crypto";
import { Server, status, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { agentChannelOptions, bearerFrom, clusterServerCredentials, CONTROL_PLANE_CN, isId, peerCommonName, type Credential, type Logger } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { validateAttachment, validateQos } from "./driver/spec.js";
import { DetachPendingError, DriverError, type HypervisorDriver } from "./driver/types.js";
import type { KeyedMutex } from "./keyed-mutex.js";
import type { NetworkStateTarget } from "./network/types.js";
import type { OwnershipRecords } from "./ownership.js";
import { sizeBytes } from "./storage/paths.js";
import { StorageError, type DiskSource, type FileVolumeStore, type SnapshotInfo, type SnapshotStore, type StorageErrorKind, type VolumeInfo } from "./storage/types.js";

/** The block storage the agent serves: the zone's volumes, the region's snapshots. */
export interface HostStorage {
  volumes: FileVolumeStore;
  snapshots: SnapshotStore;
  /** CopySnapshot within the region (storage/copy.ts). */
  copySnapshot(sourceSnapshotId: string, snapshotId: string): Promise<SnapshotInfo>;
}

export interface HostAgentServiceOptions {
  driver: HypervisorDriver;
  /** Serves ApplyHostState; serializes its own work. */
  network: NetworkStateTarget;
  /** The secret callers must present; undefined (everyone rejected) until registration. */
  hostSecret: () => string | undefined;
  /** The id the control plane gave this host; undefined until registration. */
  hostId: () => string | undefined;
  /** Which instances this agent made, for which host (the orphan cleanup's evidence). */
  owned: OwnershipRecords;
  /** Shared with the reconcile loop, so it never races a call for the same instance. */
  locks: KeyedMutex;
  /** How long a graceful stop waits before powering off. */
  stopTimeoutMs: number;
  storage: HostStorage;
  /** How long DetachVolume waits for a running guest to release a volume when the request names no wait. */
  detachWaitMs: number;
  log: Logger;
}

/** The ids a call names, for its log line (fixed keys). */
interface CallIds {
  instanceId?: string;
  volumeId?: string;
  snapshotId?: string;
}

/** A failure with a gRPC status chosen by the server itself. */
class StatusError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** Constant-time check of the call's bearer secret (hashing first equalizes lengths). */
export function authorized(metadata: Metadata, secret: string | undefined): boolean {
  const presented = bearerFrom(metadata);
  if (!secret || presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(secret));
}

const STORAGE_CODES: Record<StorageErrorKind, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  NotFound: status.NOT_FOUND,
  InUse: status.FAILED_PRECONDITION,
  Busy: status.UNAVAILABLE,
  Conflict: status.FAILED_PRECONDITION,
  Unsupported: status.FAILED_PRECONDITION,
  InvalidImage: status.FAILED_PRECONDITION,
};

function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof StatusError) return { code: err.code, details: err.message };
  if (err instanceof StorageError) return { code: STORAGE_CODES[err.kind], details: `${err.kind}: ${err.message}` };
  // Its message starts "Detaching:".
  if (err instanceof DetachPendingError) return { code: status.UNAVAILABLE, details: err.message };
  if (err instanceof DriverError) {
    return { code: err.kind === "NotFound" ? status.NOT_FOUND : status.FAILED_PRECONDITION, details: `${err.kind}: ${err.message}` };
  }
  return { code: status.INTERNAL, details: `Internal: ${err instanceof Error ? err.message : String(err)}`.slice(0, 4000) };
}

function requireInstanceId(id: string | undefined): string {
  if (typeof id !== "string" || !isId("i", id)) throw new StatusError(status.INVALID_ARGUMENT, `instance_id must look like i-0123456789abcdef0, got ${JSON.stringify(String(id).slice(0, 64))}`);
  return id;
}

function requireId(prefix: "vol" | "snap", field: string, id: string | undefined): string {
  if (typeof id !== "string" || !isId(prefix, id)) throw new StatusError(status.INVALID_ARGUMENT, `${field} must look like ${prefix}-0123456789abcdef0, got ${JSON.stringify(String(id).slice(0, 64))}`);
  return id;
}

/** `validate()`, whose DriverError is a malformed request (INVALID_ARGUMENT), not a spec the host cannot run. */
function requireValid<T>(validate: () => T): T {
  try {
    return validate();
  } catch (err) {
    if (err instanceof DriverError) throw new StatusError(status.INVALID_ARGUMENT, err.message);
    throw err;
  }
}

function volumeStatus(volumeId: string, info: VolumeInfo | undefined): agent.VolumeStatus {
  return { volumeId, sizeBytes: info?.sizeBytes ?? 0, storedBytes: info?.storedBytes ?? 0 };
}

function snapshotStatus(info: SnapshotInfo): agent.SnapshotStatus {
  return { snapshotId: info.snapshotId, sizeBytes: info.sizeBytes, storedBytes: info.storedBytes };
}

/** The service implementation; exported separately so tests can mount it on their own server. */
export function hostAgentService(opts: HostAgentServiceOptions): agent.HostAgentServer {
  const { driver, locks, log, storage } = opts;
  const { volumes, snapshots } = storage;

  /**
   * Wraps one RPC: authentication, logging, and error mapping. No rejection
   * escapes to grpc-js. `work` reports the ids it names, for logs.
   */
  function handler<Req, Res>(method: string, work: (req: Req, named: (ids: CallIds) => void) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const started = Date.now();
      const ids: CallIds = {};
      const run = async (): Promise<Res> => {
        // Another agent's certificate chains to the same CA: only the control plane's may call.
        if (peerCommonName(call) !== CONTROL_PLANE_CN) throw new StatusError(status.UNAUTHENTICATED, "the caller's certificate is not the control plane's");
        if (!authorized(call.metadata, opts.hostSecret())) throw new StatusError(status.UNAUTHENTICATED, "missing or wrong host secret");
        return work(call.request, (named) => Object.assign(ids, named));
      };
      run().then(
        (res) => {
          log.info({ method, ...ids, hostId: opts.hostId(), ms: Date.now() - started }, "call served");
          callback(null, res);
        },
        (err: unknown) => {
          const e = toServiceError(err);
          const level = e.code === status.INTERNAL ? "error" : "warn";
          log[level]({ method, ...ids, hostId: opts.hostId(), ms: Date.now() - started, code: status[e.code ?? status.UNKNOWN], details: e.details }, "call failed");
          callback(e as ServiceError);
        },
      );
    };
  }

  /** An RPC about one instance: its id validated, and run under that instance's lock. */
  function rpc<Req, Res>(method: string, instanceIdOf: (req: Req) => string | undefined, work: (req: Req, instanceId: string) => Promise<Res>) {
    return handler<Req, Res>(method, (req, named) => {
      const id = requireInstanceId(instanceIdOf(req));
      named({ instanceId: id });
      return locks.run(id, () => work(req, id));
    });
  }

  /** Runs `fn` holding the lock of every key, taken in the order given (instance, volume, snapshot everywhere, so no two calls wait on each other). */
  function holding<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    return keys.reduceRight<() => Promise<T>>((inner, key) => () => locks.run(key, inner), fn)();
  }

  /** The volume's file, NotFound when there is no volume. */
  async function volumeDisk(volumeId: string): Promise<DiskSource> {
    const info = await volumes.describe(volumeId);
    if (!info) throw new StorageError("NotFound", `volume ${volumeId} does not exist`);
    return info.disk;
  }

  /** Live when the instance's domain runs with the volume attached (the driver says), offline otherwise. */
  async function takeSnapshot(volumeId: string, snapshotId: string, instanceId: string | undefined): Promise<SnapshotInfo> {
    const existing = await snapshots.describe(snapshotId);
    // Taken already (a retry after a crash past the pivot): no second freeze. Another volume's id goes on to the store's Conflict.
    if (existing?.volumeId === volumeId) return existing;
    if (instanceId !== undefined) {
      const volume = { volumeId, disk: await volumeDisk(volumeId), overlay: volumes.liveOverlayPath(volumeId, snapshotId) };
      const live = await driver.snapshotAttachedVolume(instanceId, volume, (image) => volumes.snapshotFrom(volumeId, snapshotId, image));
      if (live) return live;
    }
    return volumes.snapshot(volumeId, snapshotId);
  }

  const statusOf = (instanceId: string, powerState: agent.PowerState): agent.InstanceStatus => ({ instanceId, powerState });

  return {
    createInstance: rpc<agent.CreateInstanceRequest, agent.InstanceStatus>(
      "CreateInstance",
      (req) => req.spec?.instanceId,
      async (req, id) => {
        // Before anything exists on the host: whatever the driver makes is then on record as ours.
        await opts.owned.record(id, opts.hostId()!);
        const disks = new Map<string, DiskSource>();
        for (const v of req.spec!.volumes) disks.set(v.volumeId, await volumeDisk(v.volumeId));
        return statusOf(id, await driver.createInstance(req.spec!, disks));
      },
    ),
    startInstance: rpc<agent.InstanceRef, agent.InstanceStatus>("StartInstance", (req) => req.instanceId, async (_req, id) => statusOf(id, await driver.startInstance(id))),
    stopInstance: rpc<agent.StopInstanceRequest, agent.InstanceStatus>("StopInstance", (req) => req.instanceId, async (req, id) =>
      statusOf(id, await driver.stopInstance(id, { force: req.force, timeoutMs: opts.stopTimeoutMs })),
    ),
    rebootInstance: rpc<agent.InstanceRef, agent.InstanceStatus>("RebootInstance", (req) => req.instanceId, async (_req, id) => statusOf(id, await driver.rebootInstance(id))),
    destroyInstance: rpc<agent.InstanceRef, agent.InstanceStatus>("DestroyInstance", (req) => req.instanceId, async (_req, id) => {
      const power = await driver.destroyInstance(id);
      await opts.owned.forget(id);
      return statusOf(id, power);
    }),
    getConsoleOutput: rpc<agent.InstanceRef, agent.ConsoleOutput>("GetConsoleOutput", (req) => req.instanceId, async (_req, id) => ({
      instanceId: id,
      output: await driver.consoleOutput(id),
    })),
    applyHostState: handler<agent.HostState, agent.ApplyHostStateResponse>("ApplyHostState", async (req) => {
      await opts.network.applyHostState(req);
      return {};
    }),
    createVolume: handler<agent.CreateVolumeRequest, agent.VolumeStatus>("CreateVolume", (req, named) => {
      const volumeId = requireId("vol", "volume_id", req.volumeId);
      const snapshotId = req.snapshotId === "" ? undefined : requireId("snap", "snapshot_id", req.snapshotId);
      named({ volumeId, snapshotId });
      return holding([volumeId], async () => {
        if (snapshotId === undefined) await volumes.create(volumeId, req.sizeGib);
        else await volumes.createFromSnapshot(volumeId, snapshotId, req.sizeGib);
        return volumeStatus(volumeId, await volumes.describe(volumeId));
      });
    }),
    deleteVolume: handler<agent.VolumeRef, agent.VolumeStatus>("DeleteVolume", (req, named) => {
      const volumeId = requireId("vol", "volume_id", req.volumeId);
      named({ volumeId });
      return holding([volumeId], async () => {
        await volumes.delete(volumeId);
        return volumeStatus(volumeId, undefined);
      });
    }),
    attachVolume: handler<agent.AttachVolumeRequest, agent.VolumeStatus>("AttachVolume", (req, named) => {
      const instanceId = requireInstanceId(req.instanceId);
      const attachment = requireValid(() => validateAttachment(req.attachment));
      const { volumeId } = attachment;
      named({ instanceId, volumeId });
      return holding([instanceId, volumeId], async () => {
        await driver.attachVolume(instanceId, attachment, await volumeDisk(volumeId));
        return volumeStatus(volumeId, await volumes.describe(volumeId));
      });
    }),
    detachVolume: handler<agent.DetachVolumeRequest, agent.VolumeStatus>("DetachVolume", (req, named) => {
      const instanceId = requireInstanceId(req.instanceId);
      const volumeId = requireId("vol", "volume_id", req.volumeId);
      if (!Number.isInteger(req.waitMs) || req.waitMs < 0) throw new StatusError(status.INVALID_ARGUMENT, `wait_ms must be 0 or more, got ${req.waitMs}`);
      named({ instanceId, volumeId });
      return holding([instanceId, volumeId], async () => {
        await driver.detachVolume(instanceId, volumeId, { force: req.force, waitMs: req.waitMs || opts.detachWaitMs });
        return volumeStatus(volumeId, await volumes.describe(volumeId));
      });
    }),
    modifyVolume: handler<agent.ModifyVolumeRequest, agent.VolumeStatus>("ModifyVolume", (req, named) => {
      const volumeId = requireId("vol", "volume_id", req.volumeId);
      const instanceId = req.instanceId === "" ? undefined : requireInstanceId(req.instanceId);
      const qos = requireValid(() => validateQos(req.qos));
      const size = sizeBytes(req.sizeGib);
      named({ instanceId, volumeId });
      const keys = [...(instanceId === undefined ? [] : [instanceId]), volumeId];
      return holding(keys, async () => {
        const resizeOffline = () => volumes.resize(volumeId, req.sizeGib);
        const attached = instanceId !== undefined && (await driver.modifyAttachedVolume(instanceId, { volumeId, sizeBytes: size, qos }, resizeOffline));
        if (!attached) await resizeOffline();
        return volumeStatus(volumeId, await volumes.describe(volumeId));
      });
    }),
    createSnapshot: handler<agent.CreateSnapshotRequest, agent.SnapshotStatus>("CreateSnapshot", (req, named) => {
      const volumeId = requireId("vol", "volume_id", req.volumeId);
      const snapshotId = requireId("snap", "snapshot_id", req.snapshotId);
      const instanceId = req.instanceId === "" ? undefined : requireInstanceId(req.instanceId);
      named({ instanceId, volumeId, snapshotId });
      const keys = [...(instanceId === undefined ? [] : [instanceId]), volumeId, snapshotId];
      return holding(keys, async () => snapshotStatus(await takeSnapshot(volumeId, snapshotId, instanceId)));
    }),
    deleteSnapshot: handler<agent.SnapshotRef, agent.SnapshotStatus>("DeleteSnapshot", (req, named) => {
      const snapshotId = requireId("snap", "snapshot_id", req.snapshotId);
      named({ snapshotId });
      return holding([snapshotId], async () => {
        await snapshots.deleteSnapshot(snapshotId);
        return { snapshotId, sizeBytes: 0, storedBytes: 0 };
      });
    }),
    copySnapshot: handler<agent.CopySnapshotRequest, agent.SnapshotStatus>("CopySnapshot", (req, named) => {
      const sourceId = requireId("snap", "source_snapshot_id", req.sourceSnapshotId);
      const snapshotId = requireId("snap", "snapshot_id", req.snapshotId);
      if (sourceId === snapshotId) throw new StatusError(status.INVALID_ARGUMENT, "source_snapshot_id and snapshot_id are the same");
      named({ snapshotId });
      // Both snapshots, in id order: two copies between the same pair never wait on each other.
      return holding([sourceId, snapshotId].sort(), async () => snapshotStatus(await storage.copySnapshot(sourceId, snapshotId)));
    }),
  };
}

export interface RunningServer {
  /** The bound port (useful when listening on port 0). */
  port: number;
  /** Stops accepting calls, lets running ones finish for up to graceMs, then cuts them. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Serves HostAgent on `listen` ("host:port") over TLS with the agent's
 * certificate; a client must present a certificate from the cluster CA at the
 * handshake (a plaintext or certificate-less client never gets a call in),
 * and calls are then served to the control plane's only (hostAgentService).
 */
export async function serveHostAgent(listen: string, opts: HostAgentServiceOptions, tls: { caPem: string; own: Credential }): Promise<RunningServer> {
  const server = new Server(agentChannelOptions);
  server.addService(agent.HostAgentService, hostAgentService(opts));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, clusterServerCredentials(tls.caPem, tls.own, true), (err, p) => (err ? reject(new Error(`cannot listen on ${listen}: ${err.message}`)) : resolve(p))),
  );
  return {
    port,
    stop: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
