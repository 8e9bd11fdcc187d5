import { compute } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { render } from "../src/command.js";
import { COMMANDS } from "../src/commands/index.js";
import { CliError, ExitCode, UsageError } from "../src/errors.js";
import type { Json } from "../src/output.js";
import { evaluate, JMESPATH_FUNCTIONS, parseQuery } from "../src/query.js";
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

  it("filters with [?...]", () => {
    expect(q("Reservations[].Instances[?State.Name=='running'].InstanceId")).toEqual([["i-1"], []]);
    expect(q("Reservations[].Instances[?State.Name=='running'][].InstanceId")).toEqual(["i-1"]);
    expect(q("Reservations[].Instances[] | [?State.Name!='running'].InstanceId")).toEqual(["i-2", "i-3"]);
    expect(q("Reservations[?ReservationId=='r-2'].Instances[0].InstanceId")).toEqual(["i-3"]);
    expect(q("Reservations[].Instances[?!State][].InstanceId")).toEqual(["i-2", "i-3"]);
    expect(q("Reservations[?ReservationId=='r-9']")).toEqual([]);
  });

  it("builds multi-select lists and hashes", () => {
    expect(q("Vpc.[VpcId, CidrBlock]")).toEqual(["vpc-1", "10.0.0.0/16"]);
    expect(q("Vpc.{Id: VpcId, Cidr: CidrBlock}")).toEqual({ Id: "vpc-1", Cidr: "10.0.0.0/16" });
    expect(q("Reservations[].{Id: ReservationId, Count: length(Instances)}")).toEqual([
      { Id: "r-1", Count: 2 },
      { Id: "r-2", Count: 1 },
    ]);
    expect(q("Missing.{Id: VpcId}")).toBeNull();
  });

  it("pipes, stopping the projection on the left", () => {
    expect(q("Reservations[].Instances[].InstanceId | [0]")).toBe("i-1");
    expect(q("Reservations[*].Instances[*].InstanceId | [1]")).toEqual(["i-3"]);
    expect(q("Vpc | VpcId")).toBe("vpc-1");
  });

  it("calls functions", () => {
    expect(q("length(Reservations)")).toBe(2);
    expect(q("length(Reservations[].Instances[])")).toBe(3);
    expect(q("sort_by(Reservations, &ReservationId)[-1].ReservationId")).toBe("r-2");
    expect(q("reverse(sort(Reservations[].Instances[].InstanceId))")).toEqual(["i-3", "i-2", "i-1"]);
    expect(q("join(',', Reservations[].ReservationId)")).toBe("r-1,r-2");
    expect(q("Reservations[?contains(Instances[].InstanceId, 'i-3')].ReservationId | [0]")).toBe("r-2");
    expect(q("max_by(Reservations, &length(Instances)).ReservationId")).toBe("r-1");
    expect(q("keys(Vpc)")).toEqual(["VpcId", "CidrBlock"]);
  });

  it("keeps slices, literals, quoted names, wildcards and whitespace", () => {
    // A slice inside a projection applies to each element; pipe to slice the list.
    expect(q("Reservations[].Instances[][1:].InstanceId")).toEqual([]);
    expect(q("Reservations[].Instances[] | [1:].InstanceId")).toEqual(["i-2", "i-3"]);
    expect(q("Reservations[::-1].ReservationId")).toEqual(["r-2", "r-1"]);
    expect(q("Vpc.*")).toEqual(["vpc-1", "10.0.0.0/16"]);
    expect(q('"Vpc"."VpcId"')).toBe("vpc-1");
    expect(q(" Vpc . VpcId ")).toBe("vpc-1");
    expect(q("Missing || 'default'")).toBe("default");
    expect(q("`[1, 2]`")).toEqual([1, 2]);
  });

  it("knows every function it lets through", () => {
    // Called with no arguments, a function jmespath has fails on its arity, not as unknown.
    for (const name of JMESPATH_FUNCTIONS) expect(() => evaluate(parseQuery(`${name}()`), null)).toThrow(/takes/);
  });

  it("reports an evaluation error as a CLI error (exit 255), not a stack trace", () => {
    const failure = (expression: string) => {
      try {
        q(expression);
      } catch (e) {
        return e;
      }
      throw new Error(`${expression} did not fail`);
    };
    const err = failure("sum(Reservations[].ReservationId)");
    expect(err).toBeInstanceOf(CliError);
    expect(err).not.toBeInstanceOf(UsageError);
    expect((err as CliError).exitCode).toBe(ExitCode.general);
    expect((err as CliError).message).toBe(
      "Error evaluating --query sum(Reservations[].ReservationId): " +
        "TypeError: sum() expected argument 1 to be type Array<number> but received type array instead.",
    );
    expect((failure("length(Missing)") as CliError).message).toBe(
      "Error evaluating --query length(Missing): TypeError: length() expected argument 1 to be type string,array,object but received type null instead.",
    );
    expect((failure("length(Vpc, Vpc)") as CliError).message).toMatch(/: ArgumentError: length\(\) takes 1 argument but received 2$/);
    expect((failure("Reservations[::0]") as CliError).message).toBe("Error evaluating --query Reservations[::0]: Invalid slice, step cannot be 0");
  });

  it.each([
    ["", "the expression is empty"],
    ["  ", "the expression is empty"],
    [".Vpc", 'Invalid token (Dot): "."'],
    ["Vpc.", "incomplete expression (nothing after '.', or empty '()')"],
    ["Vpc..VpcId", "incomplete expression (nothing after '.', or empty '()')"],
    ["Vpc | VpcId.", "incomplete expression (nothing after '.', or empty '()')"],
    ["()", "incomplete expression (nothing after '.', or empty '()')"],
    ["Vpc[0", "Expected Rbracket, got: EOF"],
    ["Vpc[-]", "invalid index"],
    ["a-b", "Unexpected token type: Number, value: NaN"],
    ["Reservations[?ReservationId='r-1']", "unknown operator '=' (compare with ==)"],
    ["Reservations[?", 'Invalid token (EOF): ""'],
    ["Vpc.{Id}", "Expected Colon, got: Rbrace"],
    ["Vpc.VpcId #", "Unknown character:#"],
    ['"Vpc', "invalid quoted identifier or literal (Unterminated string in JSON at position 4)"],
    ["lenght(Reservations)", "unknown function: lenght()"],
    ["Reservations[].Instances[?starts_wth(InstanceId, 'i-')]", "unknown function: starts_wth()"],
    ["@(Vpc)", "only a function name can be followed by '(...)'"],
  ])("refuses %j before any call (exit 252): %s", (bad, reason) => {
    let err: unknown;
    try {
      parseQuery(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(ExitCode.usage);
    expect((err as UsageError).message).toBe(`Bad value for --query ${bad}: ${reason}`);
  });
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
