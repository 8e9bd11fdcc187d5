// What other packages may use: the driver boundary (the fake driver for
// simulations), the agent runner, and the pure reconcile planner.
export { runAgent, createHost, type Host } from "./agent.js";
export { loadConfig, ConfigError, type AgentConfig } from "./config.js";
export { FakeDriver, type FakeDriverOptions } from "./driver/fake.js";
export { DriverError, type HypervisorDriver, type Capacity, type DomainStatus } from "./driver/types.js";
export { planReconcile, type ReconcileInput, type ReconcilePlan } from "./reconcile.js";
export { serveHostAgent, hostAgentService } from "./server.js";
export { KeyedMutex } from "./keyed-mutex.js";
export { bridgeName, tapName } from "./network/names.js";
