// Generated gRPC stubs for the compute API and the agent API, the compute
// API's descriptors as plain data, and the paths of the .proto sources (for
// gRPC server reflection).
import { fileURLToPath } from "node:url";

export * as compute from "./gen/cirrus/compute/v1/compute.js";
export * as agent from "./gen/cirrus/agent/v1/agent.js";
export { COMPUTE as computeDescriptors } from "./gen/descriptors.js";
export type { ComputeDescriptors, FieldDescriptor, MethodDescriptor } from "./descriptor-types.js";

/** Directory holding the .proto sources, for proto-loader/reflection. */
export const protoRoot = fileURLToPath(new URL("..", import.meta.url));
export const computeProtoFile = "cirrus/compute/v1/compute.proto";

/**
 * How an EC2 error travels over gRPC (compute.proto's header): the status
 * details are "<Code>: <message>" and the code is also in this trailer.
 */
export const EC2_ERROR_CODE_METADATA_KEY = "x-ec2-error-code";
