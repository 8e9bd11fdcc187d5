// The transport-free core of Cirrus: the schema, the EC2 errors, the
// resource registry, the operation table, and one lifecycle per resource
// kind. Transports (services/api) and the worker (services/worker) are thin
// loops over what this exports. docs/ARCHITECTURE.md has the map.
export * from "./accounts.js";
export * from "./config.js";
export * from "./context.js";
export { createCore, type CoreDeps } from "./core.js";
export { migrate } from "./db/migrate.js";
export { openPool } from "./db/pool.js";
export { clusterCa } from "./clusterCa.js";
export { inTransaction, type Queryable } from "./db/tx.js";
export { dryRun } from "./dryRun.js";
export { Ec2Error, asEc2Error, type Ec2ErrorCode, type ErrorCategory } from "./errors.js";
export { authenticateHost, classifyInstances, heartbeat, registerHost, retireHost, userData, type HostControlCore } from "./hosts.js";
export { compileHostState, markHostsChanged } from "./hostState.js";
export { auditCapacity, type CapacityDrift } from "./instances/claims.js";
export { loadInstanceTypes, type InstanceTypeSpec } from "./instanceTypes.js";
export { loadSecretsKey } from "./secrets.js";
export { LIFECYCLES, runLifecycleJob, StaleSweeper, type JobReport, type Lifecycle, type StepResult } from "./lifecycle.js";
export { syncAddressPool } from "./network/addresses.js";
export { ensureDefaultNetwork } from "./network/vpcs.js";
export * from "./surface.js";
