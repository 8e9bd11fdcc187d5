// Builds the Core a process runs the domain on, from its ports.
import type { Core } from "./context.js";
import { HostNotifier } from "./hostNotifier.js";

export type CoreDeps = Omit<Core, "notifyHosts">;

/** A Core whose notifyHosts pushes network state through `deps.agents`; `idle` waits for pushes in flight (for shutdown). */
export function createCore(deps: CoreDeps): Core & { idle(): Promise<void> } {
  const notifier = new HostNotifier(deps);
  return { ...deps, notifyHosts: (hostIds) => notifier.notify(hostIds), idle: () => notifier.idle() };
}
