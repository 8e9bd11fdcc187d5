import { describe, expect, it } from "vitest";
import { KeyedMutex } from "../src/keyed-mutex.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("KeyedMutex", () => {
  it("runs calls with the same key one at a time, in order, and different keys concurrently", async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const job = (key: string, name: string, ms: number) =>
      m.run(key, async () => {
        log.push(`start ${name}`);
        await tick(ms);
        log.push(`end ${name}`);
        return name;
      });
    const results = await Promise.all([job("a", "a1", 30), job("a", "a2", 1), job("b", "b1", 5)]);
    expect(results).toEqual(["a1", "a2", "b1"]);
    expect(log).toEqual(["start a1", "start b1", "end b1", "end a1", "start a2", "end a2"]);
    expect(m.size).toBe(0);
  });

  it("keeps going after a failure", async () => {
    const m = new KeyedMutex();
    await expect(m.run("a", async () => Promise.reject(new Error("x")))).rejects.toThrow("x");
    expect(await m.run("a", async () => 1)).toBe(1);
  });
});
