export * from "./ids.js";
export * from "./cidr.js";
export * from "./logger.js";
export * from "./grpc.js";
export * from "./agentClients.js";
export * from "./paths.js";
export * from "./securityRules.js";
export * from "./pki.js";
