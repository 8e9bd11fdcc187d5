// Binding a gRPC server to a listen address, as a promise of the bound port.
import { ServerCredentials, type Server } from "@grpc/grpc-js";

/**
 * Binds `server` to `addr` and resolves with the port bound. Without
 * `creds`, insecure: the compute API listens on loopback until signed
 * requests arrive; HostControl passes its TLS credentials.
 */
export function bind(server: Server, addr: string, creds: ServerCredentials = ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(addr, creds, (err, port) => (err ? reject(err) : resolve(port))));
}
