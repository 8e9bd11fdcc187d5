// A tiny in-process Compute server with canned answers, to check what the CLI
// sends (argv → request) and how it handles answers and errors.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { unaryHandler } from "@cirrus/api/grpc";
import { Ec2Error } from "@cirrus/core";
import { compute } from "@cirrus/proto";

type Service = typeof compute.ComputeService;
type Method = keyof Service;
type Req<M extends Method> = ReturnType<Service[M]["requestDeserialize"]>;
type Res<M extends Method> = ReturnType<Service[M]["responseDeserialize"]>;

/** Canned behaviour per RPC: return a response, or throw an Ec2Error. */
export type Handlers = { [M in Method]?: (request: Req<M>) => Res<M> | Promise<Res<M>> };

export interface FakeCompute {
  endpoint: string;
  /** Every call received, in order. */
  calls: { method: Method; request: unknown }[];
  requests<M extends Method>(method: M): Req<M>[];
  close(): Promise<void>;
}

export async function startFakeCompute(handlers: Handlers): Promise<FakeCompute> {
  const server = new Server();
  const calls: FakeCompute["calls"] = [];
  const impl: Record<string, unknown> = {};
  for (const method of Object.keys(compute.ComputeService) as Method[]) {
    impl[method] = unaryHandler(
      async (request: unknown) => {
        calls.push({ method, request });
        const h = handlers[method] as ((r: unknown) => unknown) | undefined;
        if (!h) throw new Ec2Error("Unsupported", `${method} is not canned in this test`);
        return h(request);
      },
      () => {},
    );
  }
  server.addService(compute.ComputeService, impl as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    endpoint: `127.0.0.1:${port}`,
    calls,
    requests: <M extends Method>(m: M) => calls.filter((c) => c.method === m).map((c) => c.request as Req<M>),
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** An instance as the server would describe it. */
export function instance(id: string, state: string, extra: Partial<compute.Instance> = {}): compute.Instance {
  const codes: Record<string, number> = { pending: 0, running: 16, "shutting-down": 32, terminated: 48, stopping: 64, stopped: 80 };
  return compute.Instance.fromPartial({
    InstanceId: id,
    ImageId: "ami-0123456789abcdef0",
    InstanceType: "t3.micro",
    State: { Code: codes[state] ?? 0, Name: state },
    LaunchTime: "2024-01-01T00:00:00.000Z",
    Placement: { AvailabilityZone: "lab-1a" },
    ...extra,
  });
}

/** A volume as the server would describe it, with an attachment when `attachment` names its state. */
export function volume(id: string, state: string, attachment?: string, extra: Partial<compute.Volume> = {}): compute.Volume {
  return compute.Volume.fromPartial({
    VolumeId: id,
    State: state,
    Size: 1,
    VolumeType: "gp3",
    AvailabilityZone: "lab-1a",
    CreateTime: "2024-01-01T00:00:00.000Z",
    Attachments: attachment ? [{ VolumeId: id, InstanceId: "i-1", Device: "/dev/sdf", State: attachment, AttachTime: "2024-01-01T00:00:01.000Z" }] : [],
    ...extra,
  });
}

/** A snapshot as the server would describe it. */
export function snapshot(id: string, state: string, extra: Partial<compute.Snapshot> = {}): compute.Snapshot {
  return compute.Snapshot.fromPartial({
    SnapshotId: id,
    State: state,
    Progress: state === "completed" ? "100%" : "0%",
    VolumeId: "vol-1",
    VolumeSize: 1,
    OwnerId: "000000000000",
    StartTime: "2024-01-01T00:00:00.000Z",
    ...extra,
  });
}

/** A state progression: each call answers the next of `steps`, then the last one for ever (what a Describe sees while a step runs). */
export function progression<T>(...steps: T[]): () => T {
  let next = 0;
  return () => steps[Math.min(next++, steps.length - 1)]!;
}
