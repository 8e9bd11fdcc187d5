// The compute API over gRPC: one loop over the core's operation table. The
// wire definition is the generated Compute service (compute.proto); every
// RPC it declares must have exactly one operation of the same name, checked
// when the server is built. No action is wired here by hand. Every call is
// signed (SigV4 in its metadata, @cirrus/common signing.ts) and acts as the
// account of the key that signed it.
import { randomUUID } from "node:crypto";
import type { Metadata, ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import { Ec2Error, OPERATIONS, type Core, type Principal } from "@cirrus/core";
import { compute } from "@cirrus/proto";
import { unaryHandler } from "./handler.js";

type Rpc = (typeof compute.ComputeService)[keyof typeof compute.ComputeService];

/** The operation name an RPC serves: "/cirrus.compute.v1.Compute/RunInstances" → "RunInstances". */
export function rpcName(rpc: Pick<Rpc, "path">): string {
  return rpc.path.slice(rpc.path.lastIndexOf("/") + 1);
}

/** A request as received: its bytes (what the signature covers) and the decoded message. */
interface Received {
  raw: Buffer;
  message: unknown;
}

/** What a call's signature is checked over. */
export interface SignedCall {
  /** The RPC's path, e.g. "/cirrus.compute.v1.Compute/RunInstances". */
  path: string;
  /** The :authority the client addressed. */
  authority: string;
  metadata: Metadata;
  /** The serialized request, as received. */
  body: Buffer;
}

/** The Compute service with each request kept as received beside its decoded message, so that signatures are checked over the bytes that came. */
export const signedComputeService: ServiceDefinition = Object.fromEntries(
  Object.entries(compute.ComputeService).map(([method, rpc]) => [method, {
    ...rpc,
    requestDeserialize: (raw: Buffer): Received => ({ raw, message: rpc.requestDeserialize(raw) }),
  }]),
) as unknown as ServiceDefinition;

/**
 * Handlers for every Compute RPC, to serve as `signedComputeService`.
 * `authenticate` names the caller of a signed call or throws an Ec2Error
 * (AuthFailure…), in which case the call runs nothing. Throws when the table
 * and compute.proto disagree.
 */
export function computeImplementation(core: Core, authenticate: (call: SignedCall) => Promise<Principal>): UntypedServiceImplementation {
  const byName = new Map(OPERATIONS.map((op) => [op.name, op]));
  const rpcs = Object.entries(compute.ComputeService) as [string, Rpc][];
  const missing = rpcs.map(([, rpc]) => rpcName(rpc)).filter((name) => !byName.has(name));
  const extra = [...byName.keys()].filter((name) => !rpcs.some(([, rpc]) => rpcName(rpc) === name));
  if (missing.length || extra.length) throw new Error(`operation table and compute.proto disagree: no operation for ${missing.join(", ") || "-"}; no RPC for ${extra.join(", ") || "-"}`);

  const impl: UntypedServiceImplementation = {};
  for (const [method, rpc] of rpcs) {
    const op = byName.get(rpcName(rpc))!;
    impl[method] = unaryHandler(
      async (request: Received, call: ServerUnaryCall<Received, unknown>) => {
        const principal = await authenticate({ path: rpc.path, authority: call.getHost(), metadata: call.metadata, body: request.raw });
        const requestId = randomUUID();
        return op.handler({ ...core, principal, requestId, log: core.log.child({ requestId, rpc: op.name, accountId: principal.accountId }) }, request.message);
      },
      // Expected EC2 errors log at info, others at error.
      (err) => {
        if (err instanceof Ec2Error && err.code !== "InternalError") core.log.info({ rpc: op.name, code: err.code }, err.message);
        else core.log.error({ rpc: op.name, err }, "request failed");
      },
    );
  }
  return impl;
}
