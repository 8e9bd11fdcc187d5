// One way to serve a unary call: any throw becomes its gRPC status
// (errors.ts), so no request can crash the process.
import type { sendUnaryData, ServerUnaryCall, ServiceError } from "@grpc/grpc-js";
import { toGrpcError } from "./errors.js";

/** Wraps an async handler as a grpc-js unary handler; `onError` sees every failure first (for logs). */
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
