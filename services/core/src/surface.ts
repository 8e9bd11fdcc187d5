// What the API offers, without the rest of the core's process plumbing: the
// operation table and the resource registry. Imported as
// @cirrus/core/surface by clients that describe the API (the CLI).
export { OPERATIONS, operationNamed } from "./operations.js";
export { KINDS, kindOfId, kindOfResourceType } from "./registry.js";
export type { AnyOperation, MessageCodec, Operation } from "./operation.js";
export type { ResourceKind } from "./resource.js";
