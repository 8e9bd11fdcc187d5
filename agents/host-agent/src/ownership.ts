// What this agent made: one small file per instance in the agent's own state
// directory (on the machine the agent runs on, whatever host it drives),
// written before the agent first makes anything on the host for the
// instance, naming the host id it made it for. It is the agent's own
// evidence that an instance the control plane has no record of is its to
// remove (docs/ARCHITECTURE.md, "Orphans"); an instance without a record is
// never removed on the control plane's silence alone.
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { isId } from "@cirrus/common";

export class OwnershipRecords {
  private readonly dir: string;
  private ready: Promise<unknown> | undefined;
  /** Records this process wrote or read, so a launch or start on the hot path reads no file for an instance already on record. */
  private readonly known = new Map<string, string>();

  constructor(stateDir: string) {
    this.dir = join(stateDir, "instances");
  }

  /**
   * Postcondition: the record survives a crash of this process or the
   * machine (written to a temporary file, flushed, renamed). Idempotent;
   * a later host id replaces an earlier one.
   */
  async record(instanceId: string, hostId: string): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    await this.ready;
    const path = this.path(instanceId);
    if ((this.known.get(instanceId) ?? (await this.madeFor(instanceId))) === hostId) return;
    const tmp = `${path}.tmp`;
    const file = await open(tmp, "w", 0o600);
    try {
      await file.writeFile(`${JSON.stringify({ hostId })}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    this.known.set(instanceId, hostId);
  }

  /** The host id the instance was made for; undefined without a record. Throws on a corrupt record (a human should look). */
  async madeFor(instanceId: string): Promise<string | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(instanceId), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const hostId = (JSON.parse(text) as { hostId?: unknown }).hostId;
    if (typeof hostId !== "string" || !isId("h", hostId)) throw new Error(`corrupt ownership record ${this.path(instanceId)}`);
    this.known.set(instanceId, hostId);
    return hostId;
  }

  /** Postcondition: no record for the instance. Succeeds when there is none. */
  async forget(instanceId: string): Promise<void> {
    await rm(this.path(instanceId), { force: true });
    this.known.delete(instanceId);
  }

  private path(instanceId: string): string {
    if (!isId("i", instanceId)) throw new Error(`not an instance id: ${JSON.stringify(instanceId.slice(0, 64))}`);
    return join(this.dir, `${instanceId}.json`);
  }
}
