// Pushes a host's state to its agent right after a change, so a
// security-group or elastic-IP change takes effect within a second. Pushes
// to one host are serialized and coalesced: while one is in flight, further
// requests collapse into a single follow-up that compiles the state afresh.
// Failures are only logged: the change marked the host (hostState.ts), so
// its next heartbeat carries the state anyway.
import type { Core } from "./context.js";
import { compileHostState } from "./hostState.js";
import { hostEndpoint } from "./hosts.js";

type NotifierDeps = Pick<Core, "db" | "config" | "log" | "agents">;

export class HostNotifier {
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();

  constructor(private readonly core: NotifierDeps) {}

  notify(hostIds: readonly string[]): void {
    for (const id of new Set(hostIds)) {
      if (this.running.has(id)) {
        this.again.add(id);
        continue;
      }
      this.running.set(id, this.push(id));
    }
  }

  private async push(hostId: string): Promise<void> {
    try {
      do {
        this.again.delete(hostId);
        const host = await hostEndpoint(this.core.db, hostId);
        await this.core.agents.applyHostState(host, await compileHostState(this.core, hostId));
      } while (this.again.has(hostId));
    } catch (err) {
      this.core.log.warn({ hostId, err: (err as Error).message }, "network state push failed; the next heartbeat will apply it");
    } finally {
      this.running.delete(hostId);
    }
  }

  /** Resolves when every push in flight has finished (for shutdown). */
  async idle(): Promise<void> {
    await Promise.all(this.running.values());
  }
}
