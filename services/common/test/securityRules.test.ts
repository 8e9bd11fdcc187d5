import { describe, expect, it } from "vitest";
import { ruleRangeProblem } from "../src/securityRules.js";

describe("ruleRangeProblem", () => {
  it("accepts what the agents can enforce", () => {
    for (const [p, from, to] of [["tcp", 22, 22], ["udp", 0, 65535], ["tcp", -1, -1], ["icmp", -1, -1], ["icmp", 8, -1], ["icmp", 3, 4], ["all", 7, 9]] as const) {
      expect(ruleRangeProblem(p, from, to), `${p} ${from}/${to}`).toBeUndefined();
    }
  });

  it("refuses what they cannot, saying why", () => {
    expect(ruleRangeProblem("icmp", -1, 5)).toMatch(/code \(5\) needs an ICMP type/);
    expect(ruleRangeProblem("icmp", 256, -1)).toMatch(/0-255/);
    expect(ruleRangeProblem("icmp", 1.5, -1)).toMatch(/0-255/);
    expect(ruleRangeProblem("tcp", 80, 22)).toMatch(/backwards/);
    expect(ruleRangeProblem("udp", -1, 80)).toMatch(/0-65535/);
    expect(ruleRangeProblem("tcp", 0, 65536)).toMatch(/0-65535/);
    expect(ruleRangeProblem("sctp" as never, 1, 1)).toMatch(/protocol/);
  });
});
