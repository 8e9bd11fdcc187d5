// The XML encoder's own rules, on exact documents: escaping (and the
// characters XML cannot carry), what is written and what is left out, and
// refusing a message whose types disagree with the model.
import { compute } from "@cirrus/proto";
import { XMLValidator } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { encodeError, encodeResponse, escapeXmlText } from "../../src/query/encode.js";

/** The body of a response, between `<requestId>…</requestId>` and the closing root tag. */
function bodyOf(xml: string): string {
  return xml.slice(xml.indexOf("</requestId>") + "</requestId>".length, xml.lastIndexOf("</"));
}

describe("escapeXmlText", () => {
  it("escapes markup and keeps the rest", () => {
    expect(escapeXmlText(`a & b < c > d "e" 'f' \t\n é 😀`)).toBe(`a &amp; b &lt; c &gt; d "e" 'f' \t\n é 😀`);
  });

  it("writes CR as a reference, so that it survives parsing", () => {
    expect(escapeXmlText("a\r\nb")).toBe("a&#xD;\nb");
  });

  it("replaces characters XML cannot carry with U+FFFD", () => {
    expect(escapeXmlText("\u0000\u0001\u0008\u000B\u000C\u001F\uFFFE\uFFFF")).toBe("\uFFFD".repeat(8));
    expect(escapeXmlText("x\uD800y\uDC00z")).toBe("x\uFFFDy\uFFFDz");
  });

  it("keeps every document well-formed whatever the text", () => {
    const nasty = Array.from({ length: 0x40 }, (_, i) => String.fromCharCode(i)).join("") + "]]><![CDATA[&amp;\uD83D";
    expect(XMLValidator.validate(encodeError("Code", nasty, nasty))).toBe(true);
    expect(XMLValidator.validate(encodeResponse("CreateVpc", { Vpc: { VpcId: nasty, Tags: [{ Key: nasty, Value: nasty }] } }, nasty))).toBe(true);
  });
});

describe("encodeResponse", () => {
  it("writes 0 and false, leaves out empty strings, unset fields and empty structures", () => {
    const response = compute.DescribeInstancesResponse.fromPartial({
      Reservations: [{ ReservationId: "r-1", Instances: [{ InstanceId: "i-1", State: { Code: 0, Name: "pending" }, StateReason: { Code: "", Message: "" }, Placement: {} }] }],
    });
    expect(bodyOf(encodeResponse("DescribeInstances", response, "req-1"))).toBe(
      "<reservationSet><item><groupSet/><instancesSet><item>"
      + "<amiLaunchIndex>0</amiLaunchIndex><instanceId>i-1</instanceId><instanceState><code>0</code><name>pending</name></instanceState><blockDeviceMapping/><groupSet/><tagSet/>"
      + "</item></instancesSet><reservationId>r-1</reservationId></item></reservationSet>",
    );
  });

  it("leaves out proto3 optional numbers and booleans that are not set", () => {
    const response = compute.DescribeImagesResponse.fromPartial({
      Images: [{ ImageId: "ami-1", BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 8 } }, { DeviceName: "/dev/vdb", Ebs: {} }] }],
    });
    expect(bodyOf(encodeResponse("DescribeImages", response, "req-1"))).toBe(
      "<imagesSet><item><imageId>ami-1</imageId><isPublic>false</isPublic><blockDeviceMapping>"
      + "<item><deviceName>/dev/vda</deviceName><ebs><volumeSize>8</volumeSize></ebs></item>"
      + "<item><deviceName>/dev/vdb</deviceName></item>"
      + "</blockDeviceMapping><tagSet/></item></imagesSet>",
    );
  });

  it("does not write fields the model lacks (Cirrus extensions)", () => {
    const xml = encodeResponse("DescribeImages", compute.DescribeImagesResponse.fromPartial({ Images: [{ ImageId: "ami-1", KernelLocation: "/boot/vmlinuz" }] }), "req-1");
    expect(xml).not.toContain("vmlinuz");
  });

  it("keeps an empty element of a list", () => {
    expect(bodyOf(encodeResponse("DescribeInstanceTypes", { InstanceTypes: [{ ProcessorInfo: { SupportedArchitectures: ["", "arm64"] } }, {}] }, "req-1"))).toBe(
      "<instanceTypeSet><item><processorInfo><supportedArchitectures><item/><item>arm64</item></supportedArchitectures></processorInfo></item><item/></instanceTypeSet>",
    );
  });

  it("escapes text and the request id", () => {
    const xml = encodeResponse("CreateSecurityGroup", { GroupId: "sg-1", Tags: [{ Key: "a<b", Value: "c&d" }] }, "<id>");
    expect(xml).toContain("<requestId>&lt;id&gt;</requestId>");
    expect(xml).toContain("<tagSet><item><key>a&lt;b</key><value>c&amp;d</value></item></tagSet>");
  });

  it("answers an action the model gives no output with <return>true</return>", () => {
    expect(encodeResponse("RebootInstances", {}, "req-1")).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><return>true</return></RebootInstancesResponse>',
    );
  });

  it("throws when a value's type disagrees with the model, naming where", () => {
    expect(() => encodeResponse("DescribeInstances", { Reservations: [{ Instances: [{ AmiLaunchIndex: "0" }] }] }, "r")).toThrow(/DescribeInstances\.Reservations\[0\]\.Instances\[0\]\.AmiLaunchIndex: the model says integer/);
    expect(() => encodeResponse("DescribeInstances", { Reservations: {} }, "r")).toThrow(/Reservations: the model says list/);
    expect(() => encodeResponse("DescribeInstances", { Reservations: [null] }, "r")).toThrow(/Reservations\[0\]/);
    expect(() => encodeResponse("CreateVpc", { Vpc: "vpc-1" }, "r")).toThrow(/CreateVpc\.Vpc: the model says structure/);
    expect(() => encodeResponse("DescribeUnicorns", {}, "r")).toThrow(/no action DescribeUnicorns/);
  });
});

describe("encodeError", () => {
  it("writes EC2's error document", () => {
    expect(encodeError("InvalidParameterValue", "Invalid value 'a&b' for MinCount", "req-1")).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>InvalidParameterValue</Code>'
      + "<Message>Invalid value 'a&amp;b' for MinCount</Message></Error></Errors><RequestID>req-1</RequestID></Response>",
    );
  });
});
