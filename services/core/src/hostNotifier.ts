// Pushes a host's state to its agent right after a change, so a
// security-group or elastic-IP change takes effect within a second. A host
// asked for while its push is queued or running gets one more push that
// compiles the state afresh, never two at once. At most PUSHES_IN_FLIGHT
// run together, so a change that concerns a thousand hosts does not take
// every database connection from the requests. Failures are only logged:
// the change marked the host (hostState.ts), so its next heartbeat carries
// the state anyway.
import type { Core } from "./context.js";
import { compileHostState } from "./hostState.js";
import { hostEndpoint } from "./hosts.js";

type NotifierDeps = Pick<Core, "db" | "config" | "log" | "agents">;

const PUSHES_IN_FLIGHT = 4;

export class HostNotifier {
  /** Hosts waiting for a push, in the order they were asked for. */
  private readonly queued = new Set<string>();
  /** Hosts being pushed now. */
  private readonly running = new Set<string>();
  private readonly lanes = new Set<Promise<void>>();

  constructor(private readonly core: NotifierDeps) {}

  notify(hostIds: readonly string[]): void {
    for (const id of hostIds) this.queued.add(id);
    while (this.lanes.size < PUSHES_IN_FLIGHT && this.queued.size > 0) {
      const lane: Promise<void> = this.drain().finally(() => this.lanes.delete(lane));
      this.lanes.add(lane);
    }
  }

  /** Pushes queued hosts until none is left that is not being pushed by another lane. */
  private async drain(): Promise<void> {
    for (;;) {
      const hostId = this.nextQueued();
      if (!hostId) return;
      this.queued.delete(hostId);
      this.running.add(hostId);
      try {
        const host = await hostEndpoint(this.core.db, hostId);
        await this.core.agents.applyHostState(host, await compileHostState(this.core, hostId));
      } catch (err) {
        this.core.log.warn({ hostId, err: (err as Error).message }, "host state push failed; the next heartbeat will carry it");
      } finally {
        this.running.delete(hostId);
      }
    }
  }

  /** The first queued host no lane is pushing (a host being pushed waits for its lane to finish). */
  private nextQueued(): string | undefined {
    for (const id of this.queued) if (!this.running.has(id)) return id;
    return undefined;
  }

  /** Resolves when every push queued or in flight has finished (for shutdown). */
  async idle(): Promise<void> {
    while (this.lanes.size > 0) await Promise.all(this.lanes);
  }
}
