// Control-plane side of the HostAgent API: one gRPC channel per host,
// authenticated with that host's secret.
import { agent } from "@cirrus/proto";
import { bearerMetadata, callUnary, insecure } from "./grpc.js";

export interface HostEndpoint {
  id: string;
  endpoint: string;
  secret: string;
}

type Method<Req, Res> = (c: agent.HostAgentClient) => (req: Req, md: import("@grpc/grpc-js").Metadata, opts: object, cb: (err: import("@grpc/grpc-js").ServiceError | null, res: Res) => void) => unknown;

export class AgentClients {
  private readonly clients = new Map<string, { endpoint: string; client: agent.HostAgentClient }>();

  constructor(private readonly timeoutMs = 120_000) {}

  private client(host: HostEndpoint): agent.HostAgentClient {
    const cached = this.clients.get(host.id);
    if (cached && cached.endpoint === host.endpoint) return cached.client;
    cached?.client.close();
    const client = new agent.HostAgentClient(host.endpoint, insecure());
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
  startInstance(host: HostEndpoint, instanceId: string) {
    return this.call(host, (c) => c.startInstance, { instanceId });
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
  applyNetworkState(host: HostEndpoint, state: agent.HostNetworkState) {
    return this.call(host, (c) => c.applyNetworkState, state, 10_000);
  }
  consoleOutput(host: HostEndpoint, instanceId: string) {
    return this.call(host, (c) => c.getConsoleOutput, { instanceId }, 15_000);
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
