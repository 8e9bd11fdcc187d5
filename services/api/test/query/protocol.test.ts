// Cases of Smithy's ec2Query protocol tests (smithy-aws-protocol-tests,
// model/ec2Query: input.smithy, input-lists.smithy, xml-lists.smithy,
// xml-structs.smithy, xml-errors.smithy), each restated on an EC2 shape
// that has the feature the case tests, since the codec is bound to EC2's
// model rather than to the test service's. Each `it` names the case.
// Responses are judged by @aws-sdk/client-ec2's deserializer.
import { describe, expect, it } from "vitest";
import { decodeRequest } from "../../src/query/decode.js";
import { encodeError, encodeResponse } from "../../src/query/encode.js";
import { fakeEc2 } from "./sdk.js";

/** The parameters of a form body (percent-decoded), without Action and Version as the server strips them. */
function body(form: string): Array<[string, string]> {
  return [...new URLSearchParams(form)].filter(([name]) => name !== "Action" && name !== "Version");
}

describe("Smithy ec2Query request cases, on EC2 shapes", () => {
  it("Ec2SimpleInputParamsStrings, …Integer, …StringAndBooleanTrue, …StringsAndBooleanFalse", () => {
    expect(decodeRequest("DescribeInstances", body("Action=DescribeInstances&Version=2016-11-15&NextToken=val1&MaxResults=10"))).toEqual({ NextToken: "val1", MaxResults: 10 });
    expect(decodeRequest("StopInstances", body("InstanceId.1=val1&Force=true"))).toEqual({ InstanceIds: ["val1"], Force: true });
    expect(decodeRequest("StopInstances", body("Force=false"))).toEqual({ Force: false });
  });

  it("Ec2SimpleInputParamsBlob: a blob arrives base64-encoded", () => {
    expect(decodeRequest("ImportKeyPair", body("PublicKeyMaterial=dmFsdWU%3D"))).toEqual({ PublicKeyMaterial: "dmFsdWU=" });
  });

  it("Ec2XmlNameIsUppercased: the locationName (maxResults), capitalised, is the input name", () => {
    expect(decodeRequest("DescribeInstances", body("MaxResults=5"))).toEqual({ MaxResults: 5 });
    expect(() => decodeRequest("DescribeInstances", body("maxResults=5"))).toThrow(/maxResults is not recognized/);
  });

  it("Ec2Query, Ec2QueryIsPreferred: a queryName wins over the locationName", () => {
    // Ipv6Addresses: locationName ipv6AddressesSet, queryName Ipv6Addresses.
    expect(decodeRequest("RunInstances", body("NetworkInterface.1.Ipv6Addresses.1.Ipv6Address=::1"))).toEqual({ NetworkInterfaces: [{ Ipv6Addresses: [{ Ipv6Address: "::1" }] }] });
  });

  it("Ec2Lists: lists of scalars and of structures, numbered from 1, no member level", () => {
    expect(decodeRequest("DescribeInstances", body("InstanceId.1=foo&InstanceId.2=bar&InstanceId.3=baz&Filter.1.Name=hello&Filter.2.Name=hola"))).toEqual({
      InstanceIds: ["foo", "bar", "baz"],
      Filters: [{ Name: "hello" }, { Name: "hola" }],
    });
  });

  it("Ec2EmptyQueryLists: an empty list is not sent, so the member is absent", () => {
    expect(decodeRequest("DescribeInstances", body("Action=DescribeInstances&Version=2016-11-15"))).toEqual({});
  });

  it("Ec2ListArgWithXmlNameMember: the list element's locationName (item) plays no part on input", () => {
    expect(decodeRequest("CreateTags", body("ResourceId.1=i-1&Tag.1.Key=a"))).toEqual({ Resources: ["i-1"], Tags: [{ Key: "a" }] });
    expect(() => decodeRequest("CreateTags", body("Tag.item.1.Key=a"))).toThrow(/invalid list index/);
  });

  it("Ec2ListMemberWithXmlName: the member's locationName names the list (SecurityGroupId for SecurityGroupIds)", () => {
    expect(decodeRequest("RunInstances", body("SecurityGroupId.1=A&SecurityGroupId.2=B"))).toEqual({ SecurityGroupIds: ["A", "B"] });
  });

  it("Ec2NestedStructures: structures nest with dots", () => {
    expect(decodeRequest("RunInstances", body("InstanceMarketOptions.MarketType=spot&InstanceMarketOptions.SpotOptions.MaxPrice=0.1"))).toEqual({
      InstanceMarketOptions: { MarketType: "spot", SpotOptions: { MaxPrice: "0.1" } },
    });
  });

  it("Ec2TimestampsInput: timestamps are RFC 3339 date-times", () => {
    expect(decodeRequest("RunInstances", body("InstanceMarketOptions.SpotOptions.ValidUntil=2015-01-25T08%3A00%3A00Z"))).toEqual({
      InstanceMarketOptions: { SpotOptions: { ValidUntil: "2015-01-25T08:00:00.000Z" } },
    });
  });
});

describe("Smithy ec2Query response cases, on EC2 shapes, through @aws-sdk/client-ec2", () => {
  it("Ec2XmlLists: list elements are named by the element's locationName (item), else member", async () => {
    const message = { InstanceTypes: [{ InstanceType: "x1", ProcessorInfo: { SupportedArchitectures: ["x86_64", "arm64"] } }] };
    const xml = encodeResponse("DescribeInstanceTypes", message, "requestid");
    expect(xml).toContain("<supportedArchitectures><item>x86_64</item><item>arm64</item></supportedArchitectures>");
    expect(await fakeEc2(() => ({ status: 200, xml })).call("DescribeInstanceTypes", {})).toEqual(message);
    // The pinned model's one output list whose element has no locationName
    // (the SDK's newer model renames this member, so only the XML is checked).
    const accelerators = encodeResponse("DescribeInstanceTypes", { InstanceTypes: [{ InferenceAcceleratorInfo: { Accelerators: [{ Name: "a" }, { Name: "b" }] } }] }, "requestid");
    expect(accelerators).toContain("<inferenceAcceleratorInfo><item><member><name>a</name></member><member><name>b</name></member></item></inferenceAcceleratorInfo>");
  });

  it("Ec2XmlEmptyLists: an empty list element reads as []", async () => {
    const xml = encodeResponse("DescribeRegions", { Regions: [] }, "requestid");
    expect(xml).toContain("<regionInfo/>");
    expect(await fakeEc2(() => ({ status: 200, xml })).call("DescribeRegions", {})).toEqual({ Regions: [] });
  });

  it("Ec2SimpleScalarProperties: strings, an empty string as an empty element, true, false, integer, long, double", async () => {
    const message = {
      InstanceTypes: [{
        InstanceType: "string",
        CurrentGeneration: true,
        BareMetal: false,
        VCpuInfo: { DefaultVCpus: 3 },
        MemoryInfo: { SizeInMiB: 4 },
        ProcessorInfo: { SustainedClockSpeedInGhz: 6.5 },
      }],
    };
    const xml = encodeResponse("DescribeInstanceTypes", message, "requestid");
    expect(await fakeEc2(() => ({ status: 200, xml })).call("DescribeInstanceTypes", {})).toEqual(message);
    const tags = encodeResponse("DescribeTags", { Tags: [{ Key: "k", Value: "" }] }, "requestid");
    expect(tags).toContain("<value/>");
    expect(await fakeEc2(() => ({ status: 200, xml: tags })).call("DescribeTags", {})).toEqual({ Tags: [{ Key: "k", Value: "" }] });
  });

  it("Ec2XmlTimestamps: date-times", async () => {
    const xml = encodeResponse("GetConsoleOutput", { InstanceId: "i-1", Timestamp: "2014-04-29T18:30:38Z" }, "requestid");
    expect(xml).toContain("<timestamp>2014-04-29T18:30:38Z</timestamp>");
    expect(await fakeEc2(() => ({ status: 200, xml })).call("GetConsoleOutput", { InstanceId: "i-1" })).toEqual({ InstanceId: "i-1", Timestamp: new Date(1398796238000) });
  });

  it("Ec2GreetingWithErrors: a success has the action's Response element, the requestId and no Result wrapper", () => {
    expect(encodeResponse("AssociateAddress", { AssociationId: "Hello" }, "requestid")).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<AssociateAddressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      + "<requestId>requestid</requestId><associationId>Hello</associationId></AssociateAddressResponse>",
    );
  });

  it("Ec2InvalidGreetingError: Response, Errors, Error with Code and Message, RequestID", async () => {
    const xml = encodeError("InvalidGreeting", "Hi", "foo-id");
    expect(xml).toBe('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>InvalidGreeting</Code><Message>Hi</Message></Error></Errors><RequestID>foo-id</RequestID></Response>');
    const err = await fakeEc2(() => ({ status: 400, xml })).call("DescribeRegions", {}).then(() => undefined, (e: unknown) => e as { name: string; message: string });
    expect({ name: err?.name, message: err?.message }).toEqual({ name: "InvalidGreeting", message: "Hi" });
  });
});
