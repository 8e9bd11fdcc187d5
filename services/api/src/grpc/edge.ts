// The gRPC edge as a library, for servers that must answer exactly as the
// API does (the CLI's tests run a fake Compute server on it).
export { toGrpcError } from "./errors.js";
export { unaryHandler } from "./handler.js";
