// Binding a gRPC server to a listen address, as a promise of the bound port.
import { ServerCredentials, type Server } from "@grpc/grpc-js";

/** Binds `server` to `addr` (insecure: both APIs listen on loopback or a private network) and resolves with the port bound. */
export function bind(server: Server, addr: string): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(addr, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
}
