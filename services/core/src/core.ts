// Builds the Core a process runs the domain on, from its ports.
import pLimit from "p-limit";
import type { Core } from "./context.js";
import { HostNotifier } from "./hostNotifier.js";

export type CoreDeps = Omit<Core, "notifyHosts" | "placements">;

/** A Core whose notifyHosts pushes network state through `deps.agents`; `idle` waits for pushes in flight (for shutdown). */
export function createCore(deps: CoreDeps): Core & { idle(): Promise<void> } {
  const notifier = new HostNotifier(deps);
  return {
    ...deps, placements: pLimit(deps.config.CIRRUS_PLACEMENT_CONCURRENCY),
    notifyHosts: (hostIds) => notifier.notify(hostIds), idle: () => notifier.idle(),
  };
}
