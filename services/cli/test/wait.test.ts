import { describe, expect, it } from "vitest";
import { EndpointError, ExitCode, WaiterError } from "../src/errors.js";
import { compute } from "@cirrus/proto";
import { ATTACHED, volumeState, WAITERS } from "../src/commands/waiters.js";
import { judge, NOT_FOUND, stateChangeLines, summaryLine, waitUntil, type Observation } from "../src/wait.js";

const { "instance-running": running, "instance-stopped": stopped, "instance-terminated": terminated } = WAITERS;

const seen = (states: Record<string, string>): Map<string, Observation> => new Map(Object.entries(states).map(([id, state]) => [id, { state }]));

describe("judge", () => {
  it("is done when every instance is in the target state", () => {
    expect(judge(running, ["i-1", "i-2"], seen({ "i-1": "running", "i-2": "running" }))).toEqual({ kind: "done" });
    expect(judge(stopped, ["i-1"], seen({ "i-1": "stopped" }))).toEqual({ kind: "done" });
  });

  it("keeps waiting for instances in transition", () => {
    expect(judge(running, ["i-1", "i-2"], seen({ "i-1": "running", "i-2": "pending" }))).toEqual({ kind: "waiting", remaining: ["i-2"] });
    expect(judge(stopped, ["i-1"], seen({ "i-1": "stopping" }))).toEqual({ kind: "waiting", remaining: ["i-1"] });
    expect(judge(terminated, ["i-1"], seen({ "i-1": "shutting-down" }))).toEqual({ kind: "waiting", remaining: ["i-1"] });
  });

  it("fails on states the target cannot be reached from", () => {
    expect(judge(running, ["i-1", "i-2"], seen({ "i-1": "terminated", "i-2": "pending" }))).toEqual({
      kind: "failed",
      failures: [{ id: "i-1", state: "terminated" }],
    });
    for (const state of ["shutting-down", "stopping"]) expect(judge(running, ["i-1"], seen({ "i-1": state })).kind).toBe("failed");
    for (const state of ["pending", "shutting-down", "terminated"]) expect(judge(stopped, ["i-1"], seen({ "i-1": state })).kind).toBe("failed");
    // Terminating passes through pending/stopping legitimately; nothing fails it.
    for (const state of ["pending", "running", "stopping", "stopped"]) expect(judge(terminated, ["i-1"], seen({ "i-1": state })).kind).toBe("waiting");
  });

  it("carries the state reason of a failed instance", () => {
    const m = new Map([["i-1", { state: "terminated", reason: "Server.InternalError: boot failed" }]]);
    expect(judge(running, ["i-1"], m)).toEqual({
      kind: "failed",
      failures: [{ id: "i-1", state: "terminated", reason: "Server.InternalError: boot failed" }],
    });
  });

  it("treats a vanished instance as terminated, and as a failure otherwise", () => {
    expect(judge(terminated, ["i-1", "i-2"], seen({ "i-2": "terminated" }))).toEqual({ kind: "done" });
    expect(judge(running, ["i-1"], seen({}))).toEqual({ kind: "failed", failures: [{ id: "i-1", state: NOT_FOUND }] });
  });
});

describe("the storage waiters", () => {
  const { "volume-available": available, "volume-in-use": inUse, "volume-deleted": deleted, "snapshot-completed": completed } = WAITERS;

  it("volume-available waits through creating, attaching and detaching; fails on deleting, error or a vanished volume", () => {
    for (const state of ["creating", "attaching", "detaching", "in-use"]) expect(judge(available, ["v-1"], seen({ "v-1": state })).kind).toBe("waiting");
    for (const state of ["deleting", "error"]) expect(judge(available, ["v-1"], seen({ "v-1": state })).kind).toBe("failed");
    expect(judge(available, ["v-1"], seen({}))).toEqual({ kind: "failed", failures: [{ id: "v-1", state: NOT_FOUND }] });
    expect(judge(available, ["v-1"], seen({ "v-1": "available" }))).toEqual({ kind: "done" });
  });

  it("volume-in-use is done only when attached; attach-volume's waiter also fails when the attach is undone", () => {
    expect(judge(inUse, ["v-1"], seen({ "v-1": "attaching" })).kind).toBe("waiting");
    expect(judge(inUse, ["v-1"], seen({ "v-1": "available" })).kind).toBe("waiting");
    expect(judge(inUse, ["v-1"], seen({ "v-1": "in-use" })).kind).toBe("done");
    for (const state of ["available", "detaching", "deleting", "error"]) expect(judge(ATTACHED, ["v-1"], seen({ "v-1": state })).kind).toBe("failed");
    expect(ATTACHED.name).toBe("VolumeInUse");
  });

  it("volume-deleted is done when the volume is gone and nothing fails it", () => {
    expect(judge(deleted, ["v-1", "v-2"], seen({ "v-2": "deleting" }))).toEqual({ kind: "waiting", remaining: ["v-2"] });
    expect(judge(deleted, ["v-1", "v-2"], seen({}))).toEqual({ kind: "done" });
  });

  it("snapshot-completed fails on error with the state message, and on a vanished snapshot", () => {
    expect(judge(completed, ["s-1"], new Map([["s-1", { state: "error", reason: "store full" }]]))).toEqual({ kind: "failed", failures: [{ id: "s-1", state: "error", reason: "store full" }] });
    expect(judge(completed, ["s-1"], seen({})).kind).toBe("failed");
    expect(judge(completed, ["s-1"], seen({ "s-1": "pending" })).kind).toBe("waiting");
  });

  it("a volume's judged state is its attachment's while that is in flight", () => {
    const volume = (State: string, attachment?: string) =>
      compute.Volume.fromPartial({ State, Attachments: attachment ? [{ State: attachment }] : [] });
    expect(volumeState(volume("in-use", "attaching"))).toBe("attaching");
    expect(volumeState(volume("in-use", "attached"))).toBe("in-use");
    expect(volumeState(volume("in-use", "detaching"))).toBe("detaching");
    expect(volumeState(volume("available"))).toBe("available");
  });

  it("names volumes and snapshots in the status line", () => {
    expect(summaryLine(completed, ["s-1", "s-2"], seen({ "s-1": "pending", "s-2": "completed" }), 3)).toBe("Waiting for 2 snapshots to be completed: 1 pending, 1 completed (3s)");
  });
});

describe("progress", () => {
  it("prints every instance first, then only changes", () => {
    const a = seen({ "i-1": "pending", "i-2": "pending" });
    const b = seen({ "i-1": "running", "i-2": "pending" });
    expect(stateChangeLines(["i-1", "i-2"], undefined, a, 0)).toEqual(["i-1 pending (0s)", "i-2 pending (0s)"]);
    expect(stateChangeLines(["i-1", "i-2"], a, b, 12)).toEqual(["i-1 pending → running (12s)"]);
    expect(stateChangeLines(["i-1", "i-2"], b, b, 13)).toEqual([]);
  });

  it("summarises on one line for a terminal", () => {
    expect(summaryLine(running, ["i-1", "i-2", "i-3"], seen({ "i-1": "running", "i-2": "pending", "i-3": "running" }), 7)).toBe(
      "Waiting for 3 instances to be running: 2 running, 1 pending (7s)",
    );
    expect(summaryLine(stopped, ["i-1"], seen({ "i-1": "stopping" }), 1)).toBe("Waiting for i-1 to be stopped: 1 stopping (1s)");
  });
});

/** A fake clock whose sleep advances time instantly. */
function clock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

describe("waitUntil", () => {
  it("polls until done, reporting changes", async () => {
    const rounds = [{ "i-1": "pending" }, { "i-1": "pending" }, { "i-1": "running" }];
    const out: string[] = [];
    const result = await waitUntil({
      waiter: running,
      ids: ["i-1"],
      describe: async () => seen(rounds.shift() ?? { "i-1": "running" }),
      timeoutMs: 60_000,
      pollMs: 1000,
      progress: { write: (t) => out.push(t), isTTY: false },
      ...clock(),
    });
    expect(result.failure).toBeUndefined();
    expect(result.seen.get("i-1")?.state).toBe("running");
    expect(out.join("")).toBe("i-1 pending (0s)\ni-1 pending → running (2s)\n");
  });

  it("rewrites one line on a terminal and ends it with a newline", async () => {
    const out: string[] = [];
    await waitUntil({
      waiter: stopped,
      ids: ["i-1"],
      describe: async () => seen({ "i-1": "stopped" }),
      timeoutMs: 1000,
      pollMs: 1000,
      progress: { write: (t) => out.push(t), isTTY: true },
      ...clock(),
    });
    expect(out).toEqual(["\r\x1b[KWaiting for i-1 to be stopped: 1 stopped (0s)", "\n"]);
  });

  it("fails with a clear message on an unexpected state", async () => {
    const result = await waitUntil({
      waiter: running,
      ids: ["i-1"],
      describe: async () => new Map([["i-1", { state: "terminated", reason: "no capacity" }]]),
      timeoutMs: 60_000,
      pollMs: 1000,
      progress: { write: () => {}, isTTY: false },
      ...clock(),
    });
    expect(result.failure).toBeInstanceOf(WaiterError);
    expect(result.failure?.exitCode).toBe(ExitCode.general);
    expect(result.failure?.message).toBe("Waiter InstanceRunning failed: i-1 is terminated (no capacity) while waiting for running");
  });

  it("gives up after the timeout, naming what it still waits for", async () => {
    const c = clock();
    const result = await waitUntil({
      waiter: terminated,
      ids: ["i-1"],
      describe: async () => seen({ "i-1": "shutting-down" }),
      timeoutMs: 5000,
      pollMs: 1000,
      progress: { write: () => {}, isTTY: false },
      ...c,
    });
    expect(result.failure?.message).toBe("Waiter InstanceTerminated failed: Max wait time of 5s exceeded; still waiting for i-1 (shutting-down)");
    expect(c.now()).toBe(5000);
  });

  it("retries through a lost connection", async () => {
    let calls = 0;
    const result = await waitUntil({
      waiter: running,
      ids: ["i-1"],
      describe: async () => {
        if (++calls === 1) throw new EndpointError("Could not connect");
        return seen({ "i-1": "running" });
      },
      timeoutMs: 60_000,
      pollMs: 1000,
      progress: { write: () => {}, isTTY: false },
      ...clock(),
    });
    expect(result.failure).toBeUndefined();
    expect(calls).toBe(2);
  });
});
