// Who is calling: every request to the compute API, over gRPC or the Query
// API, is signed with SigV4 by an account's access key (query/sigv4.ts checks
// the signature), and acts as that key's account. Nothing is taken from
// configuration: without a valid signature nothing runs.
import { SIGNATURE_METADATA_KEYS } from "@cirrus/common";
import { findAccessKey, type Core, type Principal } from "@cirrus/core";
import type { SignedCall } from "./grpc/computeServer.js";
import { verifySignature, type SignedRequest } from "./query/sigv4.js";

export interface Authenticator {
  /** The caller of an HTTP request signed for one of `services` ("ec2", "sts"), and the service it was signed for. */
  http(req: SignedRequest, services: readonly string[]): Promise<{ principal: Principal; service: string }>;
  /** The caller of a gRPC call. */
  grpc(call: SignedCall): Promise<Principal>;
}

/** Postcondition of both methods: resolve only for a request signed by an active key; else throw the Ec2Error EC2 answers. */
export function accessKeyAuthenticator(core: Pick<Core, "db" | "config">, secretsKey: Buffer): Authenticator {
  const verify = async (req: SignedRequest, services: readonly string[]) => {
    const v = await verifySignature(req, { region: core.config.CIRRUS_REGION, services, now: new Date(), lookup: (id) => findAccessKey(core.db, secretsKey, id) });
    return { principal: { accountId: v.accountId, operator: v.operator }, service: v.service };
  };
  return {
    http: verify,
    async grpc(call) {
      const headers = Object.fromEntries(SIGNATURE_METADATA_KEYS.map((k) => [k, call.metadata.get(k).map(String)[0]]));
      const { principal } = await verify({ method: "POST", host: call.authority, path: call.path, rawQuery: "", headers, body: call.body }, ["ec2"]);
      return principal;
    },
  };
}
