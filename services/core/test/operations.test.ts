// The operation table and compute.proto describe the same API: one
// operation per RPC, with the RPC's own request and response messages.
import { compute, computeDescriptors } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { OPERATIONS } from "../src/operations.js";
import { KINDS } from "../src/registry.js";

/** The name under which the generated module exports a codec. */
function codecName(codec: unknown): string | undefined {
  return Object.entries(compute).find(([, v]) => v === codec)?.[0];
}

describe("the operation table", () => {
  it("has exactly one operation per Compute RPC", () => {
    const names = OPERATIONS.map((op) => op.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual(Object.keys(computeDescriptors.methods).sort());
  });

  it("declares each RPC's own request and response messages", () => {
    for (const op of OPERATIONS) {
      const method = computeDescriptors.methods[op.name]!;
      expect(codecName(op.request), op.name).toBe(method.request);
      expect(codecName(op.response), op.name).toBe(method.response);
    }
  });

  it("names only kinds of the registry, and marks exactly the non-Describe actions as mutating", () => {
    const kinds = new Set(KINDS.map((k) => k.name));
    for (const op of OPERATIONS) {
      for (const k of op.kinds) expect(kinds.has(k), `${op.name} names kind ${k}`).toBe(true);
      expect(op.mutates, op.name).toBe(!/^(Describe|Get)/.test(op.name));
    }
  });
});

describe("the resource registry", () => {
  it("gives every kind its own id prefix, table and resource type", () => {
    for (const key of ["idPrefix", "table", "resourceType", "name"] as const) {
      const values = KINDS.map((k) => k[key]);
      expect(new Set(values).size, key).toBe(values.length);
    }
  });
});
