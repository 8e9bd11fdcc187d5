// The compute API over gRPC: one loop over the core's operation table. The
// wire definition is the generated Compute service (compute.proto); every
// RPC it declares must have exactly one operation of the same name, checked
// when the server is built. No action is wired here by hand.
import { randomUUID } from "node:crypto";
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { Ec2Error, OPERATIONS, type Core, type Principal } from "@cirrus/core";
import { compute } from "@cirrus/proto";
import { unaryHandler } from "./handler.js";

type Rpc = (typeof compute.ComputeService)[keyof typeof compute.ComputeService];

/** The operation name an RPC serves: "/cirrus.compute.v1.Compute/RunInstances" → "RunInstances". */
export function rpcName(rpc: Pick<Rpc, "path">): string {
  return rpc.path.slice(rpc.path.lastIndexOf("/") + 1);
}

/**
 * Handlers for every Compute RPC. `principalOf` names the caller of a call
 * (today the default account; the Query API's accounts and signatures come
 * next). Throws when the table and compute.proto disagree.
 */
export function computeImplementation(core: Core, principalOf: () => Principal): UntypedServiceImplementation {
  const byName = new Map(OPERATIONS.map((op) => [op.name, op]));
  const rpcs = Object.entries(compute.ComputeService) as [string, Rpc][];
  const missing = rpcs.map(([, rpc]) => rpcName(rpc)).filter((name) => !byName.has(name));
  const extra = [...byName.keys()].filter((name) => !rpcs.some(([, rpc]) => rpcName(rpc) === name));
  if (missing.length || extra.length) throw new Error(`operation table and compute.proto disagree: no operation for ${missing.join(", ") || "-"}; no RPC for ${extra.join(", ") || "-"}`);

  const impl: UntypedServiceImplementation = {};
  for (const [method, rpc] of rpcs) {
    const op = byName.get(rpcName(rpc))!;
    impl[method] = unaryHandler(
      async (request: unknown) => {
        const requestId = randomUUID();
        return op.handler({ ...core, principal: principalOf(), requestId, log: core.log.child({ requestId, rpc: op.name }) }, request);
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
