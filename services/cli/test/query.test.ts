import { compute } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { render } from "../src/command.js";
import { COMMANDS } from "../src/commands/index.js";
import { ExitCode, UsageError } from "../src/errors.js";
import type { Json } from "../src/output.js";
import { evaluate, parseQuery } from "../src/query.js";
import { instance } from "./fake-compute.js";

const reservations: Json = {
  Reservations: [
    { ReservationId: "r-1", Instances: [{ InstanceId: "i-1", State: { Name: "running" } }, { InstanceId: "i-2" }] },
    { ReservationId: "r-2", Instances: [{ InstanceId: "i-3" }] },
  ],
  Vpc: { VpcId: "vpc-1", CidrBlock: "10.0.0.0/16" },
  KeyMaterial: "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
};

const q = (expression: string) => evaluate(parseQuery(expression), reservations);

describe("--query", () => {
  it("selects top-level and dotted members", () => {
    expect(q("KeyMaterial")).toBe("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----");
    expect(q("Vpc.VpcId")).toBe("vpc-1");
    expect(q("Vpc")).toEqual({ VpcId: "vpc-1", CidrBlock: "10.0.0.0/16" });
  });

  it("indexes lists, negative indexes from the end", () => {
    expect(q("Reservations[0].Instances[0].InstanceId")).toBe("i-1");
    expect(q("Reservations[-1].Instances[0].InstanceId")).toBe("i-3");
    expect(q("Reservations[0].Instances[1].State.Name")).toBeNull();
    expect(q("Reservations[5]")).toBeNull();
  });

  it("projects with [*] (nested lists, nulls dropped) and flattens with []", () => {
    expect(q("Reservations[*].ReservationId")).toEqual(["r-1", "r-2"]);
    expect(q("Reservations[*].Instances[*].InstanceId")).toEqual([["i-1", "i-2"], ["i-3"]]);
    expect(q("Reservations[].Instances[].InstanceId")).toEqual(["i-1", "i-2", "i-3"]);
    expect(q("Reservations[*].Instances[].InstanceId")).toEqual(["i-1", "i-2", "i-3"]);
    expect(q("Reservations[].Instances[].State.Name")).toEqual(["running"]);
    expect(q("Reservations[*].Instances[0].InstanceId")).toEqual(["i-1", "i-3"]);
  });

  it("gives null for members of non-objects and missing members", () => {
    expect(q("Missing")).toBeNull();
    expect(q("KeyMaterial.Foo")).toBeNull();
    expect(q("Vpc[0]")).toBeNull();
    expect(q("Vpc[*]")).toBeNull();
  });

  it.each(["", ".Vpc", "Vpc.", "Vpc..VpcId", "Reservations[?State=='x']", "Vpc.{Id: VpcId}", "length(Reservations)", "Vpc | VpcId", "Vpc[0", "a-b"])(
    "refuses %j before any call (exit 252)",
    (bad) => {
      let err: unknown;
      try {
        parseQuery(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(ExitCode.usage);
      expect((err as UsageError).message).toMatch(/^Bad value for --query /);
    },
  );
});

describe("--query output", () => {
  const spec = COMMANDS.find((c) => c.name === "describe-instances")!;
  const response = compute.DescribeInstancesResponse.fromPartial({
    Reservations: [{ ReservationId: "r-1", Instances: [instance("i-1", "running"), instance("i-2", "pending")] }],
  });

  it("prints selected strings and lists as the aws CLI's text output does", () => {
    expect(render(spec, response, "text", parseQuery("Reservations[0].Instances[0].InstanceId"))).toBe("i-1\n");
    expect(render(spec, response, "text", parseQuery("Reservations[].Instances[].InstanceId"))).toBe("i-1\ti-2\n");
    expect(render(spec, response, "text", parseQuery("Nothing"))).toBe("None\n");
  });

  it("prints selected JSON, keeping restored zero values", () => {
    expect(render(spec, response, "json", parseQuery("Reservations[0].Instances[1].State"))).toBe('{\n    "Code": 0,\n    "Name": "pending"\n}\n');
    expect(render(spec, response, "json", parseQuery("Nothing"))).toBe("null\n");
  });

  it("tabulates lists of scalars and of objects", () => {
    expect(render(spec, response, "table", parseQuery("Reservations[].Instances[].InstanceId"))).toMatch(/Value[\s\S]*i-1[\s\S]*i-2/);
    expect(render(spec, response, "table", parseQuery("Reservations[].Instances[].State"))).toMatch(/Code.*Name[\s\S]*16.*running[\s\S]*0.*pending/);
  });
});
