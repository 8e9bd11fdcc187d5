export * from "./ids.js";
export * from "./errors.js";
export * from "./logger.js";
export * from "./grpc.js";
export * from "./lifecycle.js";
export * from "./agentClients.js";
export * from "./instanceSpec.js";
