// Small helpers shared by every gRPC server and client in Cirrus.
import { credentials, experimental, Metadata, type ChannelCredentials, type Client, type ServerCredentials, type ServiceError } from "@grpc/grpc-js";
import type { Credential } from "./pki.js";

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
 * Credentials for a channel to a peer of the cluster (agent ↔ control
 * plane): the peer's certificate must chain to `caPem` and name the host
 * dialled; `own`, when given, is presented as client certificate.
 */
export function clusterChannelCredentials(caPem: string, own?: Credential): ChannelCredentials {
  return credentials.createSsl(Buffer.from(caPem), own ? Buffer.from(own.keyPem) : null, own ? Buffer.from(own.certPem) : null);
}

/**
 * Fixed certificates, as grpc-js's certificate-provider credentials take
 * them. Listeners hear them on the next turn: grpc-js registers the server
 * that waits for them only after adding its listeners.
 */
class FixedCertificates implements experimental.CertificateProvider {
  constructor(
    private readonly ca: experimental.CaCertificateUpdate,
    private readonly identity: experimental.IdentityCertificateUpdate,
  ) {}
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    setImmediate(() => listener(this.ca));
  }
  removeCaCertificateListener(): void {}
  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    setImmediate(() => listener(this.identity));
  }
  removeIdentityCertificateListener(): void {}
}

/**
 * Server credentials of a peer of the cluster. A client certificate is
 * always asked for and, when given, verified against `caPem` (peerCommonName
 * then names it); `requireClientCert` refuses clients without one at the
 * handshake. (grpc-js's createSsl cannot ask for an optional certificate;
 * its certificate-provider credentials can.)
 */
export function clusterServerCredentials(caPem: string, own: Credential, requireClientCert: boolean): ServerCredentials {
  const certs = new FixedCertificates({ caCertificate: Buffer.from(caPem) }, { certificate: Buffer.from(own.certPem), privateKey: Buffer.from(own.keyPem) });
  return experimental.createCertificateProviderServerCredentials(certs, certs, requireClientCert);
}

/** The common name of the call's client certificate (verified against the CA at the handshake); undefined without one. */
export function peerCommonName(call: { getAuthContext(): { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } }): string | undefined {
  const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
  return typeof cn === "string" ? cn : undefined;
}

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
