// Generated gRPC stubs for the compute API and the agent API, plus the paths
// of their .proto sources (for gRPC server reflection).
import { fileURLToPath } from "node:url";

export * as compute from "./gen/cirrus/compute/v1/compute.js";
export * as agent from "./gen/cirrus/agent/v1/agent.js";

/** Directory holding the .proto sources, for proto-loader/reflection. */
export const protoRoot = fileURLToPath(new URL("..", import.meta.url));
export const computeProtoFile = "cirrus/compute/v1/compute.proto";
