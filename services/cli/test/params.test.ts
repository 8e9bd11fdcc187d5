import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compute } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { requestFields } from "../src/command.js";
import { ExitCode, UsageError } from "../src/errors.js";
import { fieldName, paramFields, parseCount, toMessage, type ParamSpec } from "../src/params.js";

/** The UsageError `fn` throws (failing the test if it does not). */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(ExitCode.usage);
    return err as UsageError;
  }
  throw new Error("expected a UsageError");
}

describe("parseCount", () => {
  it("reads N as exactly N and MIN:MAX as a range", () => {
    expect(parseCount("2")).toEqual({ MinCount: 2, MaxCount: 2 });
    expect(parseCount("1:3")).toEqual({ MinCount: 1, MaxCount: 3 });
    expect(parseCount(" 5 : 5 ")).toEqual({ MinCount: 5, MaxCount: 5 });
  });

  it.each(["", "a", "0", "-1", "1:", ":3", "3:1", "1.5", "1:2:3"])("rejects %j with exit 252", (bad) => {
    expect(usageError(() => parseCount(bad)).message).toMatch(/^Error parsing parameter '--count': /);
  });
});

describe("fieldName", () => {
  it("maps aws flags to EC2 member names", () => {
    expect(fieldName("image-id")).toBe("ImageId");
    expect(fieldName("tag-specifications")).toBe("TagSpecifications");
    expect(fieldName("security-group-ids")).toBe("SecurityGroupIds");
    expect(fieldName("force")).toBe("Force");
  });
});

const FILTERS: ParamSpec = { flag: "filters", kind: "structure-list", description: "" };
const IDS: ParamSpec = { flag: "instance-ids", kind: "string-list", description: "" };
const PLACEMENT: ParamSpec = { flag: "placement", kind: "structure", description: "" };

describe("paramFields", () => {
  it("reads filters as shorthand, one per word, or as JSON", () => {
    const shorthand = paramFields(FILTERS, ["Name=instance-state-name,Values=running,stopped", "Name=tag:Name,Values=web"]);
    const json = paramFields(FILTERS, [
      '[{"Name":"instance-state-name","Values":["running","stopped"]},{"Name":"tag:Name","Values":["web"]}]',
    ]);
    const request = compute.DescribeInstancesRequest.fromPartial({
      Filters: [
        { Name: "instance-state-name", Values: ["running", "stopped"] },
        { Name: "tag:Name", Values: ["web"] },
      ],
    });
    expect(toMessage(compute.DescribeInstancesRequest, shorthand)).toEqual(request);
    expect(toMessage(compute.DescribeInstancesRequest, json)).toEqual(request);
  });

  it("reads string lists space-, comma-separated or as JSON", () => {
    expect(paramFields(IDS, ["i-1", "i-2,i-3"])).toEqual({ InstanceIds: ["i-1", "i-2", "i-3"] });
    expect(paramFields(IDS, ['["i-1","i-2"]'])).toEqual({ InstanceIds: ["i-1", "i-2"] });
    expect(usageError(() => paramFields(IDS, ["[1]"])).message).toMatch(/list of strings/);
  });

  it("reads structures as shorthand or a JSON object", () => {
    expect(paramFields(PLACEMENT, "AvailabilityZone=lab-1a")).toEqual({ Placement: { AvailabilityZone: "lab-1a" } });
    expect(paramFields(PLACEMENT, '{"AvailabilityZone":"lab-1a"}')).toEqual({ Placement: { AvailabilityZone: "lab-1a" } });
    expect(usageError(() => paramFields(PLACEMENT, "[1]")).message).toMatch(/expected a JSON object/);
  });

  it("reports bad JSON and bad shorthand against the flag", () => {
    expect(usageError(() => paramFields(FILTERS, ["[{"])).message).toMatch(/^Error parsing parameter '--filters': Invalid JSON: /);
    expect(usageError(() => paramFields(FILTERS, ["Name"])).message).toMatch(/^Error parsing parameter '--filters': Expected: '='/);
  });

  it("base64-encodes user data, from text or a file, as the aws CLI does", () => {
    const blob: ParamSpec = { flag: "user-data", kind: "blob", description: "" };
    expect(paramFields(blob, "#!/bin/sh\necho hi\n")).toEqual({ UserData: Buffer.from("#!/bin/sh\necho hi\n").toString("base64") });
    const dir = mkdtempSync(join(tmpdir(), "cirrus-cli-"));
    writeFileSync(join(dir, "ud.sh"), "#cloud-config\n");
    expect(paramFields(blob, `file://${join(dir, "ud.sh")}`)).toEqual({ UserData: Buffer.from("#cloud-config\n").toString("base64") });
    expect(usageError(() => paramFields(blob, `file://${join(dir, "missing")}`)).message).toMatch(/Unable to load paramfile/);
  });

  it("reads any option from file:// (the aws CLI's paramfile)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cirrus-cli-"));
    writeFileSync(join(dir, "filters.json"), '[{"Name":"image-id","Values":["ami-1"]}]');
    expect(paramFields(FILTERS, [`file://${join(dir, "filters.json")}`])).toEqual({ Filters: [{ Name: "image-id", Values: ["ami-1"] }] });
  });

  it("reads integers and flags", () => {
    expect(paramFields({ flag: "max-results", kind: "integer", description: "" }, "5")).toEqual({ MaxResults: 5 });
    expect(usageError(() => paramFields({ flag: "max-results", kind: "integer", description: "" }, "five")).message).toBe(
      "Error parsing parameter '--max-results': expected an integer, received 'five'",
    );
    expect(paramFields({ flag: "force", kind: "flag", description: "" }, true)).toEqual({ Force: true });
  });
});

describe("requestFields", () => {
  it("sets nothing for absent options", () => {
    expect(requestFields([IDS, FILTERS, { flag: "force", kind: "flag", description: "" }], {})).toEqual({});
  });
});

describe("toMessage", () => {
  it("converts shorthand strings to the message's numbers, booleans and lists", () => {
    const fields = paramFields({ flag: "block-device-mappings", kind: "structure-list", description: "" }, [
      "DeviceName=/dev/vda,Ebs={VolumeSize=8,DeleteOnTermination=false}",
    ]);
    expect(toMessage(compute.RegisterImageRequest, { Name: "img", ...fields }).BlockDeviceMappings).toEqual([
      compute.BlockDeviceMapping.fromPartial({ DeviceName: "/dev/vda", Ebs: { VolumeSize: 8, DeleteOnTermination: false } }),
    ]);
  });

  it("keeps tag values that look like numbers as written", () => {
    const fields = paramFields({ flag: "tag-specifications", kind: "structure-list", description: "" }, [
      "ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=build,Value=007}]",
    ]);
    expect(toMessage(compute.RunInstancesRequest, fields).TagSpecifications).toEqual([
      { ResourceType: "instance", Tags: [{ Key: "Name", Value: "web" }, { Key: "build", Value: "007" }] },
    ]);
  });

  it("rejects unknown members like the aws CLI's parameter validation", () => {
    expect(usageError(() => toMessage(compute.DescribeInstancesRequest, { Filters: [{ Nmae: "x" }] })).message).toBe(
      'Parameter validation failed:\nUnknown parameter in Filters[0]: "Nmae", must be one of: Name, Values',
    );
    expect(
      usageError(() => toMessage(compute.RunInstancesRequest, { TagSpecifications: [{ ResourceType: "instance", Tags: [{ Kee: "a" }] }] }))
        .message,
    ).toMatch(/Unknown parameter in TagSpecifications\[0\]\.Tags\[0\]: "Kee", must be one of: Key, Value/);
  });

  it("rejects values of the wrong type", () => {
    expect(usageError(() => toMessage(compute.RunInstancesRequest, { Placement: "lab-1a" })).message).toBe(
      "Parameter validation failed:\nInvalid type for parameter Placement, value: lab-1a, valid types: structure",
    );
    expect(
      usageError(() => toMessage(compute.RegisterImageRequest, { BlockDeviceMappings: [{ Ebs: { VolumeSize: "big" } }] })).message,
    ).toMatch(/Invalid type for parameter BlockDeviceMappings\[0\]\.Ebs\.VolumeSize, value: big, valid types: integer/);
    expect(
      usageError(() => toMessage(compute.RegisterImageRequest, { BlockDeviceMappings: [{ Ebs: { DeleteOnTermination: "yes" } }] })).message,
    ).toMatch(/valid types: boolean/);
  });
});
