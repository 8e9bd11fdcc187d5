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
}
