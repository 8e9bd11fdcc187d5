// Locks that serialize hosts working on one shared store (NFS in a cluster).
//
// A lock is a symbolic link `<dir>/<name>.lock` whose target names its
// holder and a random token. symlink(2) fails with EEXIST when the name is
// taken, atomically, on local filesystems and on NFS alike (an O_EXCL
// create, with the holder written in the same step), and it goes through
// the CommandRunner (`ln -s`) like every host operation. flock(2) would be
// released by the kernel when its holder dies, but it belongs to a process,
// and the agent runs commands that exit: nothing would hold it between them.
//
// A holder that dies leaves its link, so holders renew: they touch the link
// every staleMs/4, and a waiter that sees the same link (target and mtime)
// unchanged for staleMs by its own clock takes it over. Comparing a
// timestamp with the waiter's clock would need the hosts and the file
// server to agree on the time; watching for a change does not. Take-over
// renames the link away (one waiter wins the rename) and checks it moved
// the link it judged stale. A holder that stalls for longer than staleMs
// (not dead, just stopped) can lose its lock: it checks with assertHeld()
// before each step that cannot be undone (a rename into place) and gives
// up with Busy when the lock is no longer its own.
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { CommandRunner } from "../runner/types.js";
import { StorageError } from "./types.js";

export interface LockOptions {
  /** Who takes the locks, for people reading a lock: the host id. */
  owner: string;
  /** How long a lock may go unrenewed before a waiter takes it over. */
  staleMs: number;
  /** How long to wait for a lock before giving up with Busy. Longer than staleMs, so a dead holder's lock is taken over first. */
  waitMs: number;
}

/** A held lock. */
export interface Lease {
  /** Throws StorageError("Busy") unless the lock is still this holder's. */
  assertHeld(): Promise<void>;
}

const POLL_MIN_MS = 20;
const POLL_MAX_MS = 500;

export class LockDir {
  private readonly owner: string;

  constructor(
    private readonly runner: CommandRunner,
    /** Where the links live; must exist. */
    readonly dir: string,
    private readonly opts: LockOptions,
  ) {
    // The owner goes into a link target and a command line: keep it plain.
    this.owner = opts.owner.replace(/[^A-Za-z0-9._:-]/g, "_").slice(0, 100) || "agent";
  }

  /** Runs `fn` holding lock `name` (a store-made name: an id or a fixed word) and releases it after, whatever happens. */
  async withLock<T>(name: string, fn: (lease: Lease) => Promise<T>): Promise<T> {
    if (!/^[A-Za-z0-9-]+$/.test(name)) throw new Error(`bad lock name ${JSON.stringify(name)}`);
    const path = posix.join(this.dir, `${name}.lock`);
    const target = `${this.owner}@${randomBytes(12).toString("hex")}`;
    await this.acquire(path, target);
    let lost = false;
    const renew = setInterval(() => {
      this.runner.run(["touch", "-h", "-c", "--", path]).catch(() => {
        lost = true;
      });
    }, Math.max(10, Math.floor(this.opts.staleMs / 4)));
    renew.unref();
    const lease: Lease = {
      assertHeld: async () => {
        if (lost || (await this.holder(path)) !== target) {
          lost = true;
          throw new StorageError("Busy", `lost lock ${name} to another host (this one stalled longer than ${this.opts.staleMs} ms)`);
        }
      },
    };
    try {
      return await fn(lease);
    } finally {
      clearInterval(renew);
      // Only our own link: after a take-over the name is someone else's.
      if (!lost && (await this.holder(path).catch(() => undefined)) === target) await this.runner.run(["rm", "-f", "--", path]).catch(() => undefined);
    }
  }

  private async acquire(path: string, target: string): Promise<void> {
    const deadline = Date.now() + this.opts.waitMs;
    let seen: { state: string; since: number } | undefined;
    let vanished = 0;
    for (let poll = POLL_MIN_MS; ; poll = Math.min(POLL_MAX_MS, poll * 2)) {
      const made = await this.runner.run(["ln", "-s", "--", target, path], { okCodes: [0, 1] });
      if (made.code === 0) return;
      const state = await this.observe(path);
      if (state === undefined) {
        // ln failed but there is no link: released in between, or the directory is missing.
        if (++vanished >= 3) throw new Error(`cannot take lock ${path}: ${made.stderr.trim()}`);
        continue;
      }
      vanished = 0;
      const now = Date.now();
      if (seen?.state !== state) seen = { state, since: now };
      else if (now - seen.since >= this.opts.staleMs) {
        await this.takeOver(path, state.slice(state.indexOf("\n") + 1));
        seen = undefined;
        continue;
      }
      if (now > deadline) throw new StorageError("Busy", `${path} is held by ${state.slice(state.indexOf("\n") + 1)}; retry later`);
      await new Promise((r) => setTimeout(r, poll));
    }
  }

  /** The link's mtime and target, one per line, or undefined when there is none. find, unlike stat, prints both without following the link. */
  private async observe(path: string): Promise<string | undefined> {
    const r = await this.runner.run(["find", path, "-maxdepth", "0", "-printf", "%T@\\n%l"], { okCodes: [0, 1] });
    const out = r.stdout.toString("utf8");
    return r.code === 0 && out.includes("\n") ? out : undefined;
  }

  private async holder(path: string): Promise<string | undefined> {
    const r = await this.runner.run(["readlink", "--", path], { okCodes: [0, 1] });
    return r.code === 0 ? r.stdout.toString("utf8").trim() : undefined;
  }

  /**
   * Removes the stale link whose target is `staleTarget`. Renamed aside
   * first, so of two waiters only one moves it; if what was moved is not the
   * stale link (released and taken again in between), it is put back.
   */
  private async takeOver(path: string, staleTarget: string): Promise<void> {
    const aside = `${path}.stale-${randomBytes(6).toString("hex")}`;
    if ((await this.runner.run(["mv", "-T", "--", path, aside], { okCodes: [0, 1] })).code !== 0) return;
    const moved = await this.holder(aside);
    if (moved !== undefined && moved !== staleTarget) await this.runner.run(["ln", "-s", "--", moved, path], { okCodes: [0, 1] });
    await this.runner.run(["rm", "-f", "--", aside]);
  }
}
