import { describe, expect, it } from "vitest";
import { looksLikeJson, parseShorthand, parseShorthandList, ShorthandSyntaxError } from "../src/shorthand.js";

describe("parseShorthand", () => {
  it("reads a flat structure", () => {
    expect(parseShorthand("AvailabilityZone=lab-1a")).toEqual({ AvailabilityZone: "lab-1a" });
    expect(parseShorthand("Key=Name,Value=web")).toEqual({ Key: "Name", Value: "web" });
  });

  it("reads comma-separated values as a list until the next key=", () => {
    expect(parseShorthand("Name=instance-state-name,Values=running,stopped")).toEqual({
      Name: "instance-state-name",
      Values: ["running", "stopped"],
    });
    expect(parseShorthand("Values=a,b,Name=x")).toEqual({ Values: ["a", "b"], Name: "x" });
    // One value stays a string; the request builder makes it a list where the shape wants one.
    expect(parseShorthand("Name=tag:Name,Values=web")).toEqual({ Name: "tag:Name", Values: "web" });
  });

  it("reads explicit lists and nested structures", () => {
    expect(parseShorthand("ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=env,Value=prod}]")).toEqual({
      ResourceType: "instance",
      Tags: [
        { Key: "Name", Value: "web" },
        { Key: "env", Value: "prod" },
      ],
    });
    expect(parseShorthand("DeviceName=/dev/vda,Ebs={VolumeSize=1,DeleteOnTermination=false}")).toEqual({
      DeviceName: "/dev/vda",
      Ebs: { VolumeSize: "1", DeleteOnTermination: "false" },
    });
    expect(parseShorthand("Values=[a,b],Empty=[],E={}")).toEqual({ Values: ["a", "b"], Empty: [], E: {} });
    expect(parseShorthand("Nested=[[a,b],[c]]")).toEqual({ Nested: [["a", "b"], ["c"]] });
    expect(parseShorthand("Tags=[{Key=k,Value=v1,v2}]")).toEqual({ Tags: [{ Key: "k", Value: ["v1", "v2"] }] });
  });

  it("keeps quoted and escaped characters", () => {
    expect(parseShorthand(`Key=Name,Value='a,b=c'`)).toEqual({ Key: "Name", Value: "a,b=c" });
    expect(parseShorthand(`Value="say \\"hi\\""`)).toEqual({ Value: 'say "hi"' });
    expect(parseShorthand(`Value=a\\,b`)).toEqual({ Value: "a,b" });
    expect(parseShorthand(`Value=a=b`)).toEqual({ Value: "a=b" });
  });

  it("ignores whitespace around tokens and allows empty values", () => {
    expect(parseShorthand(" Key = k , Value = hello world ")).toEqual({ Key: "k", Value: "hello world" });
    expect(parseShorthand("Key=k,Value=")).toEqual({ Key: "k", Value: "" });
  });

  it("reports where the syntax breaks, with a caret", () => {
    expect(() => parseShorthand("Name")).toThrowError(ShorthandSyntaxError);
    try {
      parseShorthand("Tags=[{Key=a");
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toBe("Expected: '}', received: 'EOF' for input:\nTags=[{Key=a\n            ^");
    }
    expect(() => parseShorthand("Key='open")).toThrowError(/Expected: '''/);
    expect(() => parseShorthand("A=1,A=2")).toThrowError(/unique key/);
    expect(() => parseShorthand("=x")).toThrowError(/Expected: 'key'/);
  });
});

describe("parseShorthandList", () => {
  it("splits on commas, honouring quotes", () => {
    expect(parseShorthandList("i-1")).toEqual(["i-1"]);
    expect(parseShorthandList("i-1,i-2")).toEqual(["i-1", "i-2"]);
    expect(parseShorthandList(`a,'b,c'`)).toEqual(["a", "b,c"]);
  });
});

describe("looksLikeJson", () => {
  it("is true for objects and arrays only", () => {
    expect(looksLikeJson(' [{"Name":"x"}]')).toBe(true);
    expect(looksLikeJson('{"AvailabilityZone":"a"}')).toBe(true);
    expect(looksLikeJson("Name=x")).toBe(false);
  });
});
