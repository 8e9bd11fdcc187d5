// The generated model: what scripts/query-model.ts writes today (so a stale
// model.gen.json fails here too, not only in `npm test`'s regeneration
// check), and what the codec relies on of it.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { computeDescriptors } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { buildQueryModel, EXTRA_ACTIONS, type RawEc2Model } from "../../scripts/query-model.js";
import { inputName, isKnownAction, MODEL_VERSION, operationModel, QUERY_MODEL } from "../../src/query/model.js";

const raw = createRequire(import.meta.url)("aws-sdk/apis/ec2-2016-11-15.min.json") as RawEc2Model;

describe("the generated Query model", () => {
  it("is what the script writes from the aws-sdk's EC2 model", () => {
    const written = readFileSync(new URL("../../src/query/model.gen.json", import.meta.url), "utf8");
    const model = buildQueryModel(raw, [...Object.keys(computeDescriptors.methods), ...EXTRA_ACTIONS]);
    expect(written).toBe(`${JSON.stringify(model, null, 2)}\n`);
  });

  it("knows every EC2 action, and models the ones Cirrus serves", () => {
    expect(MODEL_VERSION).toBe("2016-11-15");
    expect(QUERY_MODEL.actions).toHaveLength(Object.keys(raw.operations).length);
    expect(isKnownAction("DescribeSpotPriceHistory")).toBe(true);
    expect(isKnownAction("DescribeUnicorns")).toBe(false);
    expect(operationModel("RunInstances")).toEqual({ input: "RunInstancesRequest", output: expect.any(String) });
    expect(operationModel("RebootInstances")).toEqual({ input: "RebootInstancesRequest" });
    expect(operationModel("DescribeSpotPriceHistory")).toBeUndefined();
    expect(operationModel("toString")).toBeUndefined();
  });

  it("refers only to shapes it has, and gives no two members of a structure the same input name", () => {
    for (const [name, shape] of Object.entries(QUERY_MODEL.shapes)) {
      const refs = shape.type === "structure" ? Object.values(shape.members) : shape.type === "list" ? [shape.member] : [];
      for (const ref of refs) expect(QUERY_MODEL.shapes[ref.shape], `${name} → ${ref.shape}`).toBeDefined();
      if (shape.type !== "structure") continue;
      const names = Object.entries(shape.members).map(([member, ref]) => inputName(member, ref));
      expect(new Set(names).size, name).toBe(names.length);
    }
  });

  it("refuses traits the codec does not handle, and actions the EC2 model lacks", () => {
    const withMap: RawEc2Model = { ...raw, operations: { X: { input: { type: "structure", members: { M: { type: "map" } } } } } };
    expect(() => buildQueryModel(withMap, ["X"])).toThrow(/type map/);
    const flattened: RawEc2Model = { ...raw, operations: { X: { input: { type: "structure", members: { L: { type: "list", flattened: true, member: {} } } } } } };
    expect(() => buildQueryModel(flattened, ["X"])).toThrow(/flattened/);
    expect(() => buildQueryModel(raw, ["DescribeUnicorns"])).toThrow(/no action DescribeUnicorns/);
  });
});
