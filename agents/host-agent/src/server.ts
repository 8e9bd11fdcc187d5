// The HostAgent gRPC service: authenticates the control plane's workers with
// the host secret, validates ids, serializes calls per instance and maps
// driver failures onto statuses the worker can act on:
//   INVALID_ARGUMENT     malformed instance id, missing spec
//   UNAUTHENTICATED      missing or wrong host secret
//   FAILED_PRECONDITION  "InvalidSpec: ..." / "InvalidImage: ..." / "MissingDisk: ..." (retrying cannot help)
//   NOT_FOUND            "NotFound: ..." (start/reboot of an instance with no domain)
//   INTERNAL             anything else (transient: the worker retries)
import { createHash, timingSafeEqual } from "node:crypto";
import { Server, status, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { agentChannelOptions, bearerFrom, clusterServerCredentials, CONTROL_PLANE_CN, isId, peerCommonName, type Credential, type Logger } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { DriverError, type HypervisorDriver } from "./driver/types.js";
import type { KeyedMutex } from "./keyed-mutex.js";
import type { NetworkStateTarget } from "./network/types.js";
import type { OwnershipRecords } from "./ownership.js";

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
  log: Logger;
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

function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof StatusError) return { code: err.code, details: err.message };
  if (err instanceof DriverError) {
    return { code: err.kind === "NotFound" ? status.NOT_FOUND : status.FAILED_PRECONDITION, details: `${err.kind}: ${err.message}` };
  }
  return { code: status.INTERNAL, details: `Internal: ${err instanceof Error ? err.message : String(err)}`.slice(0, 4000) };
}

function requireInstanceId(id: string | undefined): string {
  if (typeof id !== "string" || !isId("i", id)) throw new StatusError(status.INVALID_ARGUMENT, `instance_id must look like i-0123456789abcdef0, got ${JSON.stringify(String(id).slice(0, 64))}`);
  return id;
}

/** The service implementation; exported separately so tests can mount it on their own server. */
export function hostAgentService(opts: HostAgentServiceOptions): agent.HostAgentServer {
  const { driver, locks, log } = opts;

  /**
   * Wraps one RPC: authentication, logging, and error mapping. No rejection
   * escapes to grpc-js. `work` gets the instance id it names, if any, for logs.
   */
  function handler<Req, Res>(method: string, work: (req: Req, named: (instanceId: string) => void) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const started = Date.now();
      let instanceId: string | undefined;
      const run = async (): Promise<Res> => {
        // Another agent's certificate chains to the same CA: only the control plane's may call.
        if (peerCommonName(call) !== CONTROL_PLANE_CN) throw new StatusError(status.UNAUTHENTICATED, "the caller's certificate is not the control plane's");
        if (!authorized(call.metadata, opts.hostSecret())) throw new StatusError(status.UNAUTHENTICATED, "missing or wrong host secret");
        return work(call.request, (id) => (instanceId = id));
      };
      run().then(
        (res) => {
          log.info({ method, instanceId, hostId: opts.hostId(), ms: Date.now() - started }, "call served");
          callback(null, res);
        },
        (err: unknown) => {
          const e = toServiceError(err);
          const level = e.code === status.INTERNAL ? "error" : "warn";
          log[level]({ method, instanceId, hostId: opts.hostId(), ms: Date.now() - started, code: status[e.code ?? status.UNKNOWN], details: e.details }, "call failed");
          callback(e as ServiceError);
        },
      );
    };
  }

  /** An RPC about one instance: its id validated, and run under that instance's lock. */
  function rpc<Req, Res>(method: string, instanceIdOf: (req: Req) => string | undefined, work: (req: Req, instanceId: string) => Promise<Res>) {
    return handler<Req, Res>(method, (req, named) => {
      const id = requireInstanceId(instanceIdOf(req));
      named(id);
      return locks.run(id, () => work(req, id));
    });
  }

  const statusOf = (instanceId: string, powerState: agent.PowerState): agent.InstanceStatus => ({ instanceId, powerState });

  return {
    createInstance: rpc<agent.CreateInstanceRequest, agent.InstanceStatus>(
      "CreateInstance",
      (req) => req.spec?.instanceId,
      async (req, id) => {
        // Before anything exists on the host: whatever the driver makes is then on record as ours.
        await opts.owned.record(id, opts.hostId()!);
        return statusOf(id, await driver.createInstance(req.spec!));
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
