// The instance kind's transition table, exhaustively.
import { describe, expect, it } from "vitest";
import { STATE_CODES, type InstanceStateName, type InstanceTask } from "../src/instances/model.js";
import { transitionFor, type InstanceAction } from "../src/instances/transitions.js";

const STATES = Object.keys(STATE_CODES) as InstanceStateName[];
const TASKS: (InstanceTask | null)[] = [null, "launch", "start", "stop", "reboot", "terminate"];
const ACTIONS: InstanceAction[] = ["start", "stop", "reboot", "terminate"];

describe("instance transitions", () => {
  it("give an idle instance a task only from its stable state", () => {
    expect(transitionFor("stop", "running", null)).toEqual({ kind: "task", state: "stopping", task: "stop" });
    expect(transitionFor("start", "stopped", null)).toEqual({ kind: "task", state: "pending", task: "start" });
    expect(transitionFor("reboot", "running", null)).toEqual({ kind: "task", state: "running", task: "reboot" });
    expect(transitionFor("terminate", "running", null)).toEqual({ kind: "task", state: "shutting-down", task: "terminate" });
    expect(transitionFor("terminate", "stopped", null)).toEqual({ kind: "task", state: "shutting-down", task: "terminate" });
  });

  it("are no-ops where the instance is there or on its way", () => {
    expect(transitionFor("stop", "stopped", null)).toEqual({ kind: "noop" });
    expect(transitionFor("stop", "stopping", "stop")).toEqual({ kind: "noop" });
    expect(transitionFor("start", "running", null)).toEqual({ kind: "noop" });
    expect(transitionFor("start", "pending", "launch")).toEqual({ kind: "noop" });
    expect(transitionFor("reboot", "running", "reboot")).toEqual({ kind: "noop" });
    expect(transitionFor("terminate", "terminated", null)).toEqual({ kind: "noop" });
    expect(transitionFor("terminate", "shutting-down", "terminate")).toEqual({ kind: "noop" });
  });

  it("refuse what the state cannot do", () => {
    expect(transitionFor("stop", "pending", "launch")).toEqual({ kind: "invalid" });
    expect(transitionFor("start", "terminated", null)).toEqual({ kind: "invalid" });
    expect(transitionFor("reboot", "stopped", null)).toEqual({ kind: "invalid" });
    expect(transitionFor("start", "stopping", "stop")).toEqual({ kind: "invalid" });
  });

  it("let only terminate supersede a step in flight, and never leave terminated", () => {
    for (const action of ACTIONS) {
      for (const state of STATES) {
        for (const task of TASKS.filter((t) => t !== null)) {
          const t = transitionFor(action, state, task);
          if (t.kind === "task") expect(action, `${action} from ${state} during ${task}`).toBe("terminate");
        }
        if (state === "terminated") expect(transitionFor(action, state, null).kind, `${action} from terminated`).not.toBe("task");
      }
    }
  });

  it("only ever target a stable state or the state its task passes through", () => {
    const through: Record<InstanceTask, InstanceStateName> = { launch: "pending", start: "pending", stop: "stopping", reboot: "running", terminate: "shutting-down" };
    for (const action of ACTIONS) {
      for (const state of STATES) {
        for (const task of TASKS) {
          const t = transitionFor(action, state, task);
          if (t.kind === "task") expect(t.state).toBe(through[t.task]);
        }
      }
    }
  });
});
