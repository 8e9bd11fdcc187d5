import type { Pool } from "pg";
import type { Logger, LifecycleJob } from "@cirrus/common";
import type { ApiConfig } from "../config.js";
import type { InstanceTypeSpec } from "./instanceTypes.js";

/** What every domain operation needs. Transports build one and pass it in. */
export interface DomainContext {
  pool: Pool;
  config: ApiConfig;
  instanceTypes: Map<string, InstanceTypeSpec>;
  /** Hands lifecycle steps to the workers. Must be idempotent per job (same id → one run). */
  enqueue(jobs: LifecycleJob[]): Promise<void>;
  log: Logger;
  /**
   * Tells these hosts that their network state changed (security groups,
   * elastic IPs, members). Best effort and immediate: the agents' reconcile
   * loop converges on the same state at the next heartbeat anyway.
   */
  notifyHosts(hostIds: readonly string[]): void;
}
