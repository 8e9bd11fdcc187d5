import { describe, expect, it } from "vitest";
import { parseForm } from "../../src/query/form.js";

describe("parseForm", () => {
  it("decodes pairs in order, with + as space, escapes and UTF-8, keeping duplicates", () => {
    expect(parseForm("Action=RunInstances&Tag.1.Value=a+b%2Bc%20d&Name=%C3%A9t%C3%A9&Action=x&Empty=&Bare")).toEqual([
      ["Action", "RunInstances"], ["Tag.1.Value", "a b+c d"], ["Name", "été"], ["Action", "x"], ["Empty", ""], ["Bare", ""],
    ]);
    expect(parseForm("")).toEqual([]);
  });

  it("refuses malformed escapes, invalid UTF-8 and nameless parameters", () => {
    expect(() => parseForm("A=%zz")).toThrow(expect.objectContaining({ code: "InvalidParameterValue" }));
    expect(() => parseForm("A=%4")).toThrow(expect.objectContaining({ code: "InvalidParameterValue" }));
    expect(() => parseForm("A=%C3%28")).toThrow(expect.objectContaining({ code: "InvalidParameterValue", message: "The request is not valid UTF-8." }));
    expect(() => parseForm("=x")).toThrow(expect.objectContaining({ code: "InvalidParameterValue" }));
  });
});
