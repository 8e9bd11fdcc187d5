// The connection to the compute API and the translation of gRPC failures into
// the aws CLI's messages and exit codes.
import { type Client, connectivityState, status, type ServiceError } from "@grpc/grpc-js";
import { callUnary, insecure, signCall } from "@cirrus/common";
import { compute, EC2_ERROR_CODE_METADATA_KEY } from "@cirrus/proto";
import type { Signer } from "./credentials.js";
import { CliError, EndpointError, ServiceError as Ec2ServiceError } from "./errors.js";

/** A unary RPC as described by the generated service definition (`compute.ComputeService.runInstances`). */
export interface Rpc<Req, Res> {
  readonly path: string;
  readonly requestSerialize: (value: Req) => Buffer;
  readonly responseDeserialize: (value: Buffer) => Res;
}

/** The EC2 operation name of an RPC: "/cirrus.compute.v1.Compute/RunInstances" → "RunInstances". */
export function operationName(rpc: Pick<Rpc<unknown, unknown>, "path">): string {
  return rpc.path.slice(rpc.path.lastIndexOf("/") + 1);
}

/** Makes calls to one endpoint, each with its own deadline. */
export interface ComputeApi {
  call<Req, Res>(rpc: Rpc<Req, Res>, request: Req): Promise<Res>;
  close(): void;
}

// Responses of a whole DescribeInstances for a big fleet exceed grpc-js's 4 MiB default.
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * Opens a client for `endpoint` ("host:port"). Calls fail fast instead of
 * queueing while the endpoint is down (grpc-js's default waitForReady=false),
 * and each carries a deadline of `timeoutMs` (0 = none) so a silent endpoint
 * cannot hang the CLI. Every call is signed with `signer`'s key (SigV4 in
 * its metadata, as the server requires).
 */
export function connect(endpoint: string, timeoutMs: number, signer: Signer): ComputeApi {
  const client = new compute.ComputeClient(endpoint, insecure(), {
    "grpc.max_receive_message_length": MAX_RESPONSE_BYTES,
  });
  return {
    async call<Req, Res>(rpc: Rpc<Req, Res>, request: Req): Promise<Res> {
      const metadata = await signCall(signer.key, signer.region, { authority: endpoint, path: rpc.path, body: rpc.requestSerialize(request) });
      try {
        return await callUnary<Req, Res>(
          client,
          (req, md, opts, cb) =>
            client.makeUnaryRequest(rpc.path, rpc.requestSerialize, rpc.responseDeserialize, req, md, opts, (err, res) =>
              cb(err, res as Res),
            ),
          request,
          metadata,
          timeoutMs > 0 ? timeoutMs : undefined,
        );
      } catch (err) {
        throw toCliError(err, operationName(rpc), endpoint, isConnected(client));
      }
    },
    close: () => client.close(),
  };
}

function isConnected(client: Client): boolean {
  return client.getChannel().getConnectivityState(false) === connectivityState.READY;
}

/**
 * The CLI failure for an error from a call: an EC2 error the server sent
 * (exit 254), an unreachable or silent endpoint (exit 255), or another gRPC
 * status, reported like a service error under its status name.
 */
export function toCliError(err: unknown, operation: string, endpoint: string, connected: boolean): CliError | unknown {
  const se = err as Partial<ServiceError>;
  const code = se?.metadata?.get(EC2_ERROR_CODE_METADATA_KEY)[0];
  if (typeof code === "string") {
    // The details are "<Code>: <message>" (compute.proto's header).
    const details = se.details ?? "";
    return new Ec2ServiceError(code, operation, details.startsWith(`${code}: `) ? details.slice(code.length + 2) : details);
  }
  if (typeof se?.code !== "number") return err;
  if (se.code === status.UNAVAILABLE || (se.code === status.DEADLINE_EXCEEDED && !connected))
    return new EndpointError(`Could not connect to the endpoint URL: "${endpoint}"`);
  if (se.code === status.DEADLINE_EXCEEDED) return new EndpointError(`Read timeout on endpoint URL: "${endpoint}"`);
  return new Ec2ServiceError(status[se.code] ?? String(se.code), operation, se.details ?? se.message ?? "");
}
