// Lock files shared by hosts, on a real directory through the local runner.
import { mkdtempSync, readlinkSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalRunner } from "../src/runner/local.js";
import { LockDir } from "../src/storage/lock.js";
import { StorageError } from "../src/storage/types.js";

const dir = mkdtempSync(join(tmpdir(), "cirrus-lock-"));
const runner = new LocalRunner();
const host = (owner: string, staleMs = 400, waitMs = 3000) => new LockDir(runner, dir, { owner, staleMs, waitMs });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("LockDir", () => {
  it("serializes holders of one name across hosts, not of different names", async () => {
    const events: string[] = [];
    const work = (h: LockDir, name: string, tag: string) =>
      h.withLock(name, async () => {
        events.push(`${tag} in`);
        await sleep(100);
        events.push(`${tag} out`);
      });
    await Promise.all([work(host("a"), "vol-1", "a"), work(host("b"), "vol-1", "b")]);
    expect(events.join(",")).toMatch(/^(a in,a out,b in,b out|b in,b out,a in,a out)$/);
    events.length = 0;
    await Promise.all([work(host("a"), "vol-2", "a"), work(host("b"), "vol-3", "b")]);
    expect(events.slice(0, 2).sort()).toEqual(["a in", "b in"]);
  });

  it("names its holder in the link and removes it after", async () => {
    await host("host-a").withLock("x", async () => {
      expect(readlinkSync(join(dir, "x.lock"))).toMatch(/^host-a@[0-9a-f]{24}$/);
    });
    expect(() => readlinkSync(join(dir, "x.lock"))).toThrow();
  });

  it("a holder that keeps renewing is never taken over, however long it holds", async () => {
    const order: string[] = [];
    const long = host("a").withLock("long", async () => {
      await sleep(1200);
      order.push("a done");
    });
    await sleep(50);
    await host("b").withLock("long", async () => {
      order.push("b in");
    });
    await long;
    expect(order).toEqual(["a done", "b in"]);
  });

  it("a dead holder's lock is taken over once it has gone unrenewed for staleMs", async () => {
    symlinkSync("dead-host@0123", join(dir, "stale.lock"));
    const t0 = Date.now();
    await host("b").withLock("stale", async () => {
      expect(readlinkSync(join(dir, "stale.lock"))).toMatch(/^b@/);
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });

  it("waiting gives up with Busy after waitMs", async () => {
    const holding = host("a").withLock("busy", () => sleep(1000));
    await sleep(50);
    await expect(host("b", 5000, 300).withLock("busy", async () => undefined)).rejects.toMatchObject({ kind: "Busy" });
    await holding;
  });

  it("assertHeld fails once the lock is someone else's, and the old holder then leaves the new one's link alone", async () => {
    let caught: unknown;
    await host("a").withLock("lost", async (lease) => {
      await lease.assertHeld();
      unlinkSync(join(dir, "lost.lock"));
      symlinkSync("b@4567", join(dir, "lost.lock"));
      caught = await lease.assertHeld().catch((err: unknown) => err);
    });
    expect(caught).toBeInstanceOf(StorageError);
    expect((caught as StorageError).kind).toBe("Busy");
    expect(readlinkSync(join(dir, "lost.lock"))).toBe("b@4567");
    unlinkSync(join(dir, "lost.lock"));
  });
});
