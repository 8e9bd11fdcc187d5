// The operation table and compute.proto describe the same API: one
// operation per RPC, with the RPC's own request and response messages.
import { compute, computeDescriptors } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import type { RequestContext } from "../src/context.js";
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

describe("every operation", () => {
  it("refuses a NUL character in any string, nested or in a list, before its handler runs (Postgres text cannot hold one)", async () => {
    // No context: the refusal comes before the handler could use one.
    const ctx = {} as RequestContext;
    const byName = (name: string) => OPERATIONS.find((op) => op.name === name)!;
    await expect(byName("DeleteKeyPair").handler(ctx, { KeyName: "a\u0000b" })).rejects.toMatchObject({ code: "InvalidParameterValue", message: "The value of KeyName must not contain the character U+0000." });
    await expect(byName("DescribeKeyPairs").handler(ctx, { KeyNames: ["ok", "\u0000"], Filters: [] })).rejects.toMatchObject({ message: expect.stringContaining("KeyNames.2") });
    await expect(byName("DescribeInstances").handler(ctx, { InstanceIds: [], Filters: [{ Name: "tag:Name", Values: ["x\u0000"] }] })).rejects.toMatchObject({ message: expect.stringContaining("Filters.1.Values.1") });
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
