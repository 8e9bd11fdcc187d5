// Control-plane side of the HostAgent API: one gRPC channel per host, over
// TLS with the control plane's certificate (the agent's must chain to the
// cluster CA and name its endpoint), authenticated with that host's secret.
// Implements the core's AgentPort.
import { status, type ChannelCredentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { agent } from "@cirrus/proto";
import { agentChannelOptions, bearerMetadata, callUnary } from "./grpc.js";

export interface HostEndpoint {
  id: string;
  endpoint: string;
  secret: string;
}

type Method<Req, Res> = (c: agent.HostAgentClient) => (req: Req, md: Metadata, opts: object, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/** Statuses with which the agent refuses a request itself (see agents/host-agent/src/server.ts): retrying cannot help. */
const PERMANENT = new Set<number>([status.FAILED_PRECONDITION, status.INVALID_ARGUMENT, status.NOT_FOUND]);

/** How long a snapshot, a copy or a snapshot's fold may take. */
const SNAPSHOT_TIMEOUT_MS = 60 * 60_000;

export class AgentClients {
  private readonly clients = new Map<string, { endpoint: string; client: agent.HostAgentClient }>();

  constructor(
    private readonly channelCredentials: ChannelCredentials,
    private readonly timeoutMs = 120_000,
  ) {}

  private client(host: HostEndpoint): agent.HostAgentClient {
    const cached = this.clients.get(host.id);
    if (cached && cached.endpoint === host.endpoint) return cached.client;
    cached?.client.close();
    const client = new agent.HostAgentClient(host.endpoint, this.channelCredentials, agentChannelOptions);
    this.clients.set(host.id, { endpoint: host.endpoint, client });
    return client;
  }

  private call<Req, Res>(host: HostEndpoint, method: Method<Req, Res>, req: Req, timeoutMs = this.timeoutMs): Promise<Res> {
    const c = this.client(host);
    return callUnary(c, method(c) as never, req, bearerMetadata(host.secret), timeoutMs);
  }

  createInstance(host: HostEndpoint, spec: agent.InstanceSpec) {
    return this.call(host, (c) => c.createInstance, { spec });
  }
  stopInstance(host: HostEndpoint, instanceId: string, force: boolean) {
    return this.call(host, (c) => c.stopInstance, { instanceId, force });
  }
  rebootInstance(host: HostEndpoint, instanceId: string) {
    return this.call(host, (c) => c.rebootInstance, { instanceId });
  }
  destroyInstance(host: HostEndpoint, instanceId: string) {
    return this.call(host, (c) => c.destroyInstance, { instanceId });
  }
  applyHostState(host: HostEndpoint, state: agent.HostState) {
    return this.call(host, (c) => c.applyHostState, state, 10_000);
  }
  async consoleOutput(host: HostEndpoint, instanceId: string): Promise<Buffer> {
    return Buffer.from((await this.call(host, (c) => c.getConsoleOutput, { instanceId }, 15_000)).output);
  }

  createVolume(host: HostEndpoint, req: agent.CreateVolumeRequest) {
    return this.call(host, (c) => c.createVolume, req);
  }
  deleteVolume(host: HostEndpoint, volumeId: string) {
    return this.call(host, (c) => c.deleteVolume, { volumeId });
  }
  attachVolume(host: HostEndpoint, instanceId: string, attachment: agent.VolumeAttachment) {
    return this.call(host, (c) => c.attachVolume, { instanceId, attachment });
  }
  detachVolume(host: HostEndpoint, req: agent.DetachVolumeRequest) {
    return this.call(host, (c) => c.detachVolume, req);
  }
  modifyVolume(host: HostEndpoint, req: agent.ModifyVolumeRequest) {
    return this.call(host, (c) => c.modifyVolume, req);
  }
  // Snapshots and copies read a whole volume: they get as long as a large one takes.
  createSnapshot(host: HostEndpoint, req: agent.CreateSnapshotRequest) {
    return this.call(host, (c) => c.createSnapshot, req, SNAPSHOT_TIMEOUT_MS);
  }
  deleteSnapshot(host: HostEndpoint, snapshotId: string) {
    return this.call(host, (c) => c.deleteSnapshot, { snapshotId }, SNAPSHOT_TIMEOUT_MS);
  }
  copySnapshot(host: HostEndpoint, req: agent.CopySnapshotRequest) {
    return this.call(host, (c) => c.copySnapshot, req, SNAPSHOT_TIMEOUT_MS);
  }

  isPermanent(err: unknown): boolean {
    const code = (err as Partial<ServiceError>).code;
    return typeof code === "number" && PERMANENT.has(code);
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
