// SigV4 for the compute API over gRPC: a call is signed like an HTTP POST to
// its method's path, with the :authority as `host` and the SHA-256 of the
// serialized request message as the payload hash, and the signature travels
// in the call's metadata (authorization, x-amz-date, x-amz-content-sha256).
// The server checks it with the same verifier as the Query API's
// (services/api/src/query/sigv4.ts), over the bytes it received.
import { createHash } from "node:crypto";
import { Metadata } from "@grpc/grpc-js";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";

/** An access key: what the aws CLI keeps in ~/.aws/credentials. */
export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The metadata keys a signed call carries. */
export const SIGNATURE_METADATA_KEYS = ["authorization", "x-amz-date", "x-amz-content-sha256"] as const;

/**
 * Metadata signing one call to `path` ("/cirrus.compute.v1.Compute/RunInstances")
 * at `authority` (the channel's target, "host:port") whose serialized request
 * is `body`, for `region`. Postcondition: the server's verifier accepts it
 * within 15 minutes of `now`, and refuses it for any other body, path,
 * authority or key.
 */
export async function signCall(key: AccessKey, region: string, call: { authority: string; path: string; body: Uint8Array }, now = new Date()): Promise<Metadata> {
  const signer = new SignatureV4({ credentials: key, region, service: "ec2", sha256: Hash.bind(null, "sha256"), applyChecksum: false });
  const signed = await signer.sign({
    method: "POST",
    protocol: "http:",
    hostname: call.authority,
    path: call.path,
    query: {},
    headers: { host: call.authority, "x-amz-content-sha256": createHash("sha256").update(call.body).digest("hex") },
    body: call.body,
  }, { signingDate: now });
  const metadata = new Metadata();
  for (const k of SIGNATURE_METADATA_KEYS) metadata.set(k, String(signed.headers[k]));
  return metadata;
}
