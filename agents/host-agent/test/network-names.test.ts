import { describe, expect, it } from "vitest";
import { bridgeName, instanceChain, isOwnChain, mainChains, tapName } from "../src/network/names.js";
import { A, B, C } from "./helpers.js";

describe("names", () => {
  it("gives bridges and taps distinct, deterministic names within IFNAMSIZ, even for ids sharing a long prefix", () => {
    const taps = [A, B, C].map(tapName);
    expect(new Set(taps).size).toBe(3);
    for (const t of taps) expect(t).toMatch(/^ct[0-9a-f]{13}$/);
    expect(tapName(A)).toBe(tapName(A));
    expect(bridgeName("subnet-0123456789abcdef0")).toMatch(/^cb[0-9a-f]{13}$/);
    expect(bridgeName("subnet-0123456789abcdef0")).not.toBe(bridgeName("subnet-0123456789abcdef1"));
  });

  it("keeps chain names within iptables' 28 characters and recognizes only its own prefix's", () => {
    expect(instanceChain("ABCDEFGH", A, "OUT").length).toBeLessThanOrEqual(28);
    for (const c of Object.values(mainChains("ABCDEFGH"))) expect(c.length).toBeLessThanOrEqual(28);
    expect(instanceChain("CIRRUS", A, "IN")).toMatch(/^CIRRUS-[0-9a-f]{12}-IN$/);
    expect(instanceChain("CIRRUS", A, "IN")).not.toBe(instanceChain("CIRRUS", B, "IN"));
    expect(isOwnChain("CIRRUS", "CIRRUS-FORWARD")).toBe(true);
    expect(isOwnChain("CI", "CIRRUS-FORWARD")).toBe(false);
    expect(isOwnChain("CIRRUS", "DOCKER-USER")).toBe(false);
  });
});
