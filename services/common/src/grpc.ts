// Small helpers shared by every gRPC server and client in Cirrus.
import { credentials, Metadata, type Client, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { toGrpcError } from "./errors.js";

/**
 * Wraps an async handler as a grpc-js unary handler: a thrown Ec2Error becomes
 * its gRPC status; anything else becomes InternalError (logged by `onError`),
 * so no request can crash the process.
 */
export function unaryHandler<Req, Res>(
  handle: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  onError: (err: unknown, call: ServerUnaryCall<Req, Res>) => void,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    handle(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        onError(err, call);
        callback(toGrpcError(err) as ServiceError);
      },
    );
  };
}

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
