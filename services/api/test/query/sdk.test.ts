// The codec against the real @aws-sdk/client-ec2: what the SDK sends decodes
// to what it was given, and what the encoder writes parses to what the
// message holds. First for every operation of the table with every field
// set, then for the cases where EC2's XML is particular (defaults, empty
// lists, empty tag values, timestamps, errors).
import { OPERATIONS } from "@cirrus/core/surface";
import { compute, computeDescriptors } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { decodeRequest } from "../../src/query/decode.js";
import { encodeError, encodeResponse } from "../../src/query/encode.js";
import { operationModel, shapeNamed } from "../../src/query/model.js";
import { fakeEc2, type Answer } from "./sdk.js";

const TIMESTAMP = "2024-01-02T03:04:05.000Z";

/** The target of a structure's member (the element's, for a list), or undefined when the model lacks it. */
function memberTarget(shapeName: string | undefined, field: string): string | undefined {
  const shape = shapeName === undefined ? undefined : shapeNamed(shapeName);
  const member = shape?.type === "structure" ? shape.members[field] : undefined;
  if (!member) return undefined;
  const target = shapeNamed(member.shape);
  return target.type === "list" ? target.member.shape : member.shape;
}

/** A message with every field set to a value that is not its default: two elements per list. */
function sample(message: string, shapeName: string | undefined): Record<string, unknown> {
  let n = 0;
  const fill = (msg: string, shape: string | undefined): Record<string, unknown> =>
    Object.fromEntries(Object.entries(computeDescriptors.messages[msg]!).map(([field, d]) => {
      const target = memberTarget(shape, field);
      const one = (): unknown => {
        n++;
        if (d.message) return fill(d.type, target);
        if (d.type === "bool") return true;
        if (d.type === "bytes") return Buffer.from([n, 2, 3]);
        if (d.type === "double" || d.type === "float") return n + 0.5;
        if (d.type !== "string") return n;
        return target === "timestamp" ? TIMESTAMP : `${field}-${n}`;
      };
      return [field, d.repeated ? [one(), one()] : one()];
    }));
  return fill(message, shapeName);
}

/** `value` as the SDK (or the decoder, `blobs` "base64") gives it back: only the model's members, timestamps as Dates. */
function viaModel(value: unknown, shapeName: string, blobs: "bytes" | "base64"): unknown {
  const shape = shapeNamed(shapeName);
  if (shape.type === "list") return (value as unknown[]).map((v) => viaModel(v, shape.member.shape, blobs));
  if (shape.type === "structure") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>)
      .filter(([field]) => shape.members[field])
      .map(([field, v]) => [field, viaModel(v, shape.members[field]!.shape, blobs)]));
  }
  if (shape.type === "timestamp" && blobs === "bytes") return new Date(value as string);
  if (shape.type === "blob" && blobs === "base64") return Buffer.from(value as Uint8Array).toString("base64");
  return value;
}

function ok(xml: string): Answer {
  return { status: 200, xml };
}

describe("every operation through @aws-sdk/client-ec2", () => {
  for (const op of OPERATIONS) {
    const method = computeDescriptors.methods[op.name]!;
    const model = operationModel(op.name)!;

    it(`${op.name}: the SDK's request decodes to its input`, async () => {
      const sdk = fakeEc2(() => ok(encodeResponse(op.name, op.response.fromPartial({} as never), "req-1")));
      const input = sample(method.request, model.input);
      await sdk.call(op.name, input);
      const decoded = decodeRequest(op.name, sdk.lastParams());
      expect(decoded).toEqual(viaModel(input, model.input, "base64"));
      // And the request codec reads it as the message (bar the fields EC2's input lacks).
      expect(op.request.fromJSON(decoded)).toEqual(op.request.fromPartial(viaModel(input, model.input, "bytes") as never));
    });

    it(`${op.name}: the SDK parses the response to the message`, async () => {
      const message = op.response.fromPartial(sample(method.response, model.output) as never);
      const sdk = fakeEc2(() => ok(encodeResponse(op.name, message, "req-1")));
      const output = await sdk.call(op.name, {});
      if (model.output) expect(output).toEqual(viaModel(message, model.output, "bytes"));
      else expect(Object.keys(output).filter((k) => k !== "Return")).toEqual([]);
    });
  }
});

describe("responses through @aws-sdk/client-ec2", () => {
  it("RunInstances: proto defaults 0 and false are written, empty strings and empty structures are not", async () => {
    const reservation = compute.Reservation.fromPartial({
      ReservationId: "r-0123456789abcdef0",
      OwnerId: "123456789012",
      Instances: [{
        InstanceId: "i-0123456789abcdef0",
        ImageId: "ami-0123456789abcdef0",
        State: { Code: 0, Name: "pending" },
        InstanceType: "t2.micro",
        LaunchTime: "2024-05-01T10:00:00.000Z",
        Placement: { AvailabilityZone: "lab-1a" },
        Tags: [{ Key: "Name", Value: "web" }, { Key: "role", Value: "" }],
        StateReason: { Code: "", Message: "" },
        CpuOptions: { CoreCount: 1, ThreadsPerCore: 1 },
        SecurityGroups: [{ GroupId: "sg-0123456789abcdef0", GroupName: "default" }],
        PrivateIpAddress: "10.0.0.5",
      }],
    });
    const sdk = fakeEc2(() => ok(encodeResponse("RunInstances", reservation, "req-1")));
    expect(await sdk.call("RunInstances", { MinCount: 1, MaxCount: 1 })).toEqual({
      ReservationId: "r-0123456789abcdef0",
      OwnerId: "123456789012",
      Groups: [],
      Instances: [{
        InstanceId: "i-0123456789abcdef0",
        ImageId: "ami-0123456789abcdef0",
        State: { Code: 0, Name: "pending" },
        InstanceType: "t2.micro",
        LaunchTime: new Date("2024-05-01T10:00:00.000Z"),
        Placement: { AvailabilityZone: "lab-1a" },
        AmiLaunchIndex: 0,
        Tags: [{ Key: "Name", Value: "web" }, { Key: "role", Value: "" }],
        CpuOptions: { CoreCount: 1, ThreadsPerCore: 1 },
        SecurityGroups: [{ GroupId: "sg-0123456789abcdef0", GroupName: "default" }],
        PrivateIpAddress: "10.0.0.5",
        BlockDeviceMappings: [],
      }],
    });
  });

  it("DescribeInstances: an empty answer has Reservations [] and no NextToken", async () => {
    const sdk = fakeEc2(() => ok(encodeResponse("DescribeInstances", compute.DescribeInstancesResponse.fromPartial({}), "req-1")));
    expect(await sdk.call("DescribeInstances", {})).toEqual({ Reservations: [] });
  });

  it("DescribeSecurityGroups: unset optional ports are left out, empty lists kept", async () => {
    const response = compute.DescribeSecurityGroupsResponse.fromPartial({
      SecurityGroups: [{
        GroupId: "sg-1",
        GroupName: "web",
        Description: "web & <friends>",
        OwnerId: "123456789012",
        VpcId: "vpc-1",
        IpPermissions: [
          { IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "0.0.0.0/0", Description: "ssh" }] },
          { IpProtocol: "-1", UserIdGroupPairs: [{ GroupId: "sg-1", UserId: "123456789012" }] },
        ],
        IpPermissionsEgress: [{ IpProtocol: "-1", IpRanges: [{ CidrIp: "0.0.0.0/0" }] }],
      }],
    });
    const sdk = fakeEc2(() => ok(encodeResponse("DescribeSecurityGroups", response, "req-1")));
    expect(await sdk.call("DescribeSecurityGroups", {})).toEqual({
      SecurityGroups: [{
        GroupId: "sg-1",
        GroupName: "web",
        Description: "web & <friends>",
        OwnerId: "123456789012",
        VpcId: "vpc-1",
        IpPermissions: [
          { IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "0.0.0.0/0", Description: "ssh" }], UserIdGroupPairs: [] },
          { IpProtocol: "-1", IpRanges: [], UserIdGroupPairs: [{ GroupId: "sg-1", UserId: "123456789012" }] },
        ],
        IpPermissionsEgress: [{ IpProtocol: "-1", IpRanges: [{ CidrIp: "0.0.0.0/0" }], UserIdGroupPairs: [] }],
        Tags: [],
      }],
    });
  });

  it("CreateKeyPair: multi-line text (CR too) comes back as it was", async () => {
    const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\r\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    const sdk = fakeEc2(() => ok(encodeResponse("CreateKeyPair", compute.CreateKeyPairResponse.fromPartial({ KeyName: "k", KeyMaterial: pem }), "req-1")));
    expect(await sdk.call("CreateKeyPair", { KeyName: "k" })).toEqual({ KeyName: "k", KeyMaterial: pem, Tags: [] });
  });

  it("answers an action without an output in the model with EC2's <return>true</return>", async () => {
    const sdk = fakeEc2(() => ok(encodeResponse("DeregisterImage", compute.DeregisterImageResponse.fromPartial({ Return: true }), "req-1")));
    // The SDK's newer model has DeregisterImage's Return; the pinned model has no output.
    expect(await sdk.call("DeregisterImage", { ImageId: "ami-1" })).toEqual({ Return: true });
  });

  it("errors: the SDK reads the code and message, escaped and with invalid characters replaced", async () => {
    const message = "The instance ID 'i-1' <&> \"x\" \u0001\uD800 does not exist";
    const sdk = fakeEc2(() => ({ status: 400, xml: encodeError("InvalidInstanceID.NotFound", message, "req-1") }));
    const err = await sdk.call("DescribeInstances", {}).then(() => undefined, (e: unknown) => e as { name: string; message: string });
    expect(err?.name).toBe("InvalidInstanceID.NotFound");
    expect(err?.message).toBe("The instance ID 'i-1' <&> \"x\" \uFFFD\uFFFD does not exist");
  });
});
