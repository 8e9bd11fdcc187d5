// Small helpers shared by every gRPC server and client in Cirrus.
import { credentials, Metadata, type Client, type ServiceError } from "@grpc/grpc-js";

type UnaryMethod<Req, Res> = (req: Req, md: Metadata, opts: { deadline?: Date }, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/** Calls a generated grpc-js unary method as a promise, with metadata and an optional deadline in ms. */
export function callUnary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata = new Metadata(),
  timeoutMs?: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const opts = timeoutMs ? { deadline: new Date(Date.now() + timeoutMs) } : {};
    method.call(client, request, metadata, opts, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Metadata carrying a bearer secret (and optionally the caller's host id). */
export function bearerMetadata(secret: string, hostId?: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${secret}`);
  if (hostId) md.set("x-cirrus-host-id", hostId);
  return md;
}

/** The bearer secret in a call's metadata, or undefined. */
export function bearerFrom(md: Metadata): string | undefined {
  const v = md.get("authorization")[0];
  return typeof v === "string" && v.startsWith("Bearer ") ? v.slice(7) : undefined;
}

export const insecure = credentials.createInsecure;

/**
 * The largest message between an agent and the control plane, either way
 * (host states, console output). Set explicitly on every channel and server
 * of agent.proto; the control plane never sends a larger host state (it
 * fails closed instead: services/core/src/hostState.ts).
 */
export const AGENT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** grpc-js options for both ends of agent.proto's services. */
export const agentChannelOptions = {
  "grpc.max_send_message_length": AGENT_MAX_MESSAGE_BYTES,
  "grpc.max_receive_message_length": AGENT_MAX_MESSAGE_BYTES,
} as const;
