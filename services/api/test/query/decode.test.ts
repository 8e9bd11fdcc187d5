// Query request decoding against EC2's model: names (queryName, capitalised
// locationName, member name), lists without a `member.` level, nesting,
// value types, and the strictness (unknown names, list gaps, duplicates,
// malformed values) that answers EC2's errors rather than guessing.
import { Ec2Error } from "@cirrus/core";
import { compute } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { decodeRequest, isDryRun, unsupportedParameters } from "../../src/query/decode.js";

/** The form as name/value pairs, from an object for brevity (the order of keys is kept). */
function form(params: Record<string, string>): Array<[string, string]> {
  return Object.entries(params);
}

/** Asserts that decoding throws an Ec2Error with `code` and a message matching `message`. */
function expectRefused(action: string, params: Array<[string, string]>, code: string, message: RegExp): void {
  let thrown: unknown;
  try {
    decodeRequest(action, params);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `${action} ${JSON.stringify(params)}`).toBeInstanceOf(Ec2Error);
  expect((thrown as Ec2Error).code).toBe(code);
  expect((thrown as Ec2Error).message).toMatch(message);
}

describe("decodeRequest", () => {
  it("decodes DescribeInstances' lists and nested filters, in index order whatever the order sent", () => {
    const decoded = decodeRequest("DescribeInstances", form({
      "InstanceId.2": "i-0000000000000000b",
      "InstanceId.1": "i-0000000000000000a",
      "Filter.1.Name": "instance-state-name",
      "Filter.1.Value.2": "stopped",
      "Filter.1.Value.1": "running",
      "Filter.2.Name": "tag:Name",
      "Filter.2.Value.1": "web",
      MaxResults: "5",
      NextToken: "abc",
    }));
    expect(decoded).toEqual({
      InstanceIds: ["i-0000000000000000a", "i-0000000000000000b"],
      Filters: [{ Name: "instance-state-name", Values: ["running", "stopped"] }, { Name: "tag:Name", Values: ["web"] }],
      MaxResults: 5,
      NextToken: "abc",
    });
    expect(compute.DescribeInstancesRequest.fromJSON(decoded)).toEqual({
      InstanceIds: ["i-0000000000000000a", "i-0000000000000000b"],
      Filters: [{ Name: "instance-state-name", Values: ["running", "stopped"] }, { Name: "tag:Name", Values: ["web"] }],
      MaxResults: 5,
      NextToken: "abc",
    });
  });

  it("decodes RunInstances by the model's input names into its member names", () => {
    const userData = Buffer.from("#!/bin/sh\necho hi\n").toString("base64");
    const decoded = decodeRequest("RunInstances", form({
      ImageId: "ami-0123456789abcdef0",
      MinCount: "1",
      MaxCount: "3",
      // locationName "SecurityGroupId" on input; the member is SecurityGroupIds.
      "SecurityGroupId.1": "sg-0123456789abcdef0",
      UserData: userData,
      KeyName: "k",
      // locationName "clientToken", capitalised.
      ClientToken: "tok",
      "Placement.AvailabilityZone": "lab-1a",
      "TagSpecification.1.ResourceType": "instance",
      "TagSpecification.1.Tag.1.Key": "Name",
      "TagSpecification.1.Tag.1.Value": "web",
      "TagSpecification.1.Tag.2.Key": "empty",
      "TagSpecification.1.Tag.2.Value": "",
      "BlockDeviceMapping.1.DeviceName": "/dev/vda",
      "BlockDeviceMapping.1.Ebs.VolumeSize": "20",
      "BlockDeviceMapping.1.Ebs.DeleteOnTermination": "true",
    }));
    expect(decoded).toEqual({
      ImageId: "ami-0123456789abcdef0",
      MinCount: 1,
      MaxCount: 3,
      SecurityGroupIds: ["sg-0123456789abcdef0"],
      UserData: userData,
      KeyName: "k",
      ClientToken: "tok",
      Placement: { AvailabilityZone: "lab-1a" },
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "web" }, { Key: "empty", Value: "" }] }],
      BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 20, DeleteOnTermination: true } }],
    });
    expect(compute.RunInstancesRequest.fromJSON(decoded)).toMatchObject({
      ImageId: "ami-0123456789abcdef0",
      MinCount: 1,
      MaxCount: 3,
      SecurityGroupIds: ["sg-0123456789abcdef0"],
      UserData: userData,
      Placement: { AvailabilityZone: "lab-1a" },
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "web" }, { Key: "empty", Value: "" }] }],
    });
  });

  it("prefers a member's queryName to its locationName", () => {
    const decoded = decodeRequest("RunInstances", form({
      MinCount: "1",
      MaxCount: "1",
      "NetworkInterface.1.DeviceIndex": "0",
      "NetworkInterface.1.PrivateIpAddresses.1.PrivateIpAddress": "10.0.0.5",
      "NetworkInterface.1.PrivateIpAddresses.1.Primary": "true",
      "NetworkInterface.1.SecurityGroupId.1": "sg-1",
    }));
    expect(decoded.NetworkInterfaces).toEqual([{ DeviceIndex: 0, PrivateIpAddresses: [{ PrivateIpAddress: "10.0.0.5", Primary: true }], Groups: ["sg-1"] }]);
    // The locationName (privateIpAddressesSet) is not an input name when there is a queryName.
    expectRefused("RunInstances", form({ "NetworkInterface.1.PrivateIpAddressesSet.1.PrivateIpAddress": "10.0.0.5" }), "UnknownParameter", /NetworkInterface\.1\.PrivateIpAddressesSet/);
  });

  it("keeps a blob as its base64 text, which the request codec turns into bytes", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG test";
    const decoded = decodeRequest("ImportKeyPair", form({ KeyName: "k", PublicKeyMaterial: Buffer.from(key).toString("base64") }));
    expect(decoded).toEqual({ KeyName: "k", PublicKeyMaterial: Buffer.from(key).toString("base64") });
    expect(Buffer.from(compute.ImportKeyPairRequest.fromJSON(decoded).PublicKeyMaterial).toString()).toBe(key);
    expectRefused("ImportKeyPair", form({ PublicKeyMaterial: "ssh-ed25519 AAAA" }), "InvalidParameterValue", /Invalid value 'ssh-ed25519 AAAA' for PublicKeyMaterial: expected base64/);
  });

  it("reads booleans as true/false in any case, and nothing else", () => {
    expect(decodeRequest("StopInstances", form({ "InstanceId.1": "i-1", Force: "TRUE", DryRun: "False" }))).toEqual({ InstanceIds: ["i-1"], Force: true, DryRun: false });
    for (const bad of ["yes", "1", "", "true "]) {
      expectRefused("StopInstances", form({ Force: bad }), "InvalidParameterValue", new RegExp(`Invalid value '${bad}' for Force: expected true or false`));
    }
  });

  it("reads integers in range, and refuses anything else naming the parameter", () => {
    expect(decodeRequest("AuthorizeSecurityGroupIngress", form({ GroupId: "sg-1", IpProtocol: "icmp", FromPort: "-1", ToPort: "+8" }))).toEqual({ GroupId: "sg-1", IpProtocol: "icmp", FromPort: -1, ToPort: 8 });
    for (const bad of ["abc", "1.5", "", "1e3", "0x10", "2147483648", "-2147483649", " 1"]) {
      expectRefused("RunInstances", form({ MinCount: bad }), "InvalidParameterValue", /^Invalid value '.*' for MinCount: expected an integer/);
    }
    expect(decodeRequest("RunInstances", form({ MinCount: "2147483647" })).MinCount).toBe(2147483647);
  });

  it("reads timestamps as ISO 8601, normalised to UTC", () => {
    const at = (v: string) => decodeRequest("RunInstances", form({ "InstanceMarketOptions.SpotOptions.ValidUntil": v })).InstanceMarketOptions;
    expect(at("2024-01-31T12:00:00Z")).toEqual({ SpotOptions: { ValidUntil: "2024-01-31T12:00:00.000Z" } });
    expect(at("2024-01-31T14:00:00.5+02:00")).toEqual({ SpotOptions: { ValidUntil: "2024-01-31T12:00:00.500Z" } });
    for (const bad of ["yesterday", "2024-01-31", "1706702400", "2024-13-31T12:00:00Z"]) {
      expectRefused("RunInstances", form({ "InstanceMarketOptions.SpotOptions.ValidUntil": bad }), "InvalidParameterValue", /for InstanceMarketOptions\.SpotOptions\.ValidUntil: expected an ISO 8601/);
    }
  });

  it("quotes at most 64 characters of a refused value", () => {
    expectRefused("RunInstances", form({ MinCount: "9".repeat(1000) }), "InvalidParameterValue", new RegExp(`^Invalid value '${"9".repeat(64)}…' for MinCount`));
  });

  it("refuses names the input shape does not have", () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ Foo: "x" }, "Foo"],
      [{ "Filter.1.Nam": "x" }, "Filter.1.Nam"],
      [{ "InstanceIds.1": "i-1" }, "InstanceIds.1"], // the member name is not the input name
      [{ instanceId: "i-1" }, "instanceId"], // names are case-sensitive
      [{ "MaxResults.1": "5" }, "MaxResults.1"], // nothing below a scalar
      [{ "InstanceId.1.Foo": "x" }, "InstanceId.1.Foo"],
      [{ "Filter..Name": "x" }, "Filter..Name"],
      [{ Action: "DescribeInstances" }, "Action"], // the caller strips the protocol's parameters
    ];
    for (const [params, name] of cases) {
      expectRefused("DescribeInstances", form(params), "UnknownParameter", new RegExp(`^The parameter ${name.replace(/\./g, "\\.")} is not recognized$`));
    }
  });

  it("refuses list indexes that are not 1, 2, 3… without gaps", () => {
    expectRefused("DescribeInstances", form({ "InstanceId.1": "a", "InstanceId.3": "c" }), "InvalidParameterValue", /The list InstanceId has no InstanceId\.2/);
    expectRefused("DescribeInstances", form({ "InstanceId.2": "b" }), "InvalidParameterValue", /The list InstanceId has no InstanceId\.1/);
    expectRefused("DescribeInstances", form({ "Filter.1.Name": "n", "Filter.1.Value.2": "v" }), "InvalidParameterValue", /The list Filter\.1\.Value has no Filter\.1\.Value\.1/);
    for (const index of ["0", "x", "01", "-1", "1e1"]) {
      expectRefused("DescribeInstances", form({ [`InstanceId.${index}`]: "a" }), "InvalidParameterValue", new RegExp(`The parameter InstanceId\\.${index} has an invalid list index`));
    }
  });

  it("refuses a name given twice, and a value for a list or a structure itself", () => {
    expectRefused("DescribeInstances", [["InstanceId.1", "a"], ["InstanceId.1", "b"]], "InvalidParameterValue", /The parameter InstanceId\.1 is given more than once/);
    expectRefused("DescribeInstances", [["NextToken", "a"], ["NextToken", "a"]], "InvalidParameterValue", /The parameter NextToken is given more than once/);
    expectRefused("DescribeInstances", form({ InstanceId: "i-1" }), "InvalidParameterValue", /Invalid value 'i-1' for InstanceId: expected a list InstanceId\.1/);
    expectRefused("RunInstances", form({ Placement: "lab-1a" }), "InvalidParameterValue", /Invalid value 'lab-1a' for Placement: expected parameters Placement\.<name>/);
    expectRefused("DescribeInstances", form({ "Filter.1": "x" }), "InvalidParameterValue", /for Filter\.1: expected parameters/);
  });

  it("decodes an action without parameters to an empty object", () => {
    expect(decodeRequest("DescribeRegions", [])).toEqual({});
  });
});

describe("unsupportedParameters and isDryRun", () => {
  it("names, as sent, the outermost parameters Cirrus's message lacks; DryRun apart", () => {
    const decoded = decodeRequest("RunInstances", form({
      MinCount: "1",
      MaxCount: "1",
      DryRun: "true",
      "IamInstanceProfile.Name": "role",
      "Placement.AvailabilityZone": "lab-1a",
      "Placement.Tenancy": "dedicated",
      "BlockDeviceMapping.1.DeviceName": "/dev/vda",
      "BlockDeviceMapping.2.Ebs.VolumeSize": "8",
      "Ipv6AddressCount": "1",
      "SecurityGroup.1": "default",
      "TagSpecification.1.ResourceType": "instance",
      "TagSpecification.1.Tag.1.Key": "k",
    }));
    expect(isDryRun(decoded)).toBe(true);
    expect(unsupportedParameters("RunInstances", decoded, "RunInstancesRequest")).toEqual([
      "IamInstanceProfile",
      "Placement.Tenancy",
      "Ipv6AddressCount",
      "SecurityGroup",
    ]);
  });

  it("looks inside lists of structures Cirrus has", () => {
    const decoded = decodeRequest("AuthorizeSecurityGroupIngress", form({
      GroupId: "sg-1",
      "IpPermissions.1.IpProtocol": "tcp",
      "IpPermissions.1.IpRanges.1.CidrIp": "0.0.0.0/0",
      "IpPermissions.2.IpProtocol": "tcp",
      "IpPermissions.2.Ipv6Ranges.1.CidrIpv6": "::/0",
      "IpPermissions.2.IpRanges.1.CidrIp": "10.0.0.0/8",
    }));
    expect(unsupportedParameters("AuthorizeSecurityGroupIngress", decoded, "AuthorizeSecurityGroupRequest")).toEqual(["IpPermissions.2.Ipv6Ranges"]);
  });

  it("finds nothing to refuse in a request Cirrus carries whole", () => {
    const decoded = decodeRequest("DescribeInstances", form({ "InstanceId.1": "i-1", "Filter.1.Name": "n", "Filter.1.Value.1": "v", DryRun: "false" }));
    expect(isDryRun(decoded)).toBe(false);
    expect(unsupportedParameters("DescribeInstances", decoded, "DescribeInstancesRequest")).toEqual([]);
    expect(isDryRun({})).toBe(false);
  });
});
