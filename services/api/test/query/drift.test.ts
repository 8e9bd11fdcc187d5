// compute.proto against EC2's model (the generated model.gen.json): the
// Query codec decodes into and encodes from the proto's messages by the
// model's member names, so every field of an operation's request message
// must be a member of the action's input shape, and every field of its
// response message a member of the output shape, with the same name and a
// compatible type, recursively. Where they differ on purpose, or the pinned
// model is older than the API, the difference is listed in KNOWN_DRIFT with
// its reason; any other difference fails, and so does a listed one that is
// gone.
import { OPERATIONS } from "@cirrus/core/surface";
import { computeDescriptors, type FieldDescriptor } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { operationModel, shapeNamed, type ScalarType } from "../../src/query/model.js";

/** Proto scalar type → the model's types whose values it carries exactly. */
const COMPATIBLE: Readonly<Record<string, readonly ScalarType[]>> = {
  string: ["string", "timestamp"], // Cirrus keeps timestamps as ISO 8601 strings
  bytes: ["blob"],
  bool: ["boolean"],
  int32: ["integer"],
  int64: ["long"],
  double: ["double"],
  float: ["float"],
};

/** Each entry: "<Action> <Message>.<field path>: <what differs>" — why it is accepted. */
const KNOWN_DRIFT: Readonly<Record<string, string>> = {
  "RegisterImage RegisterImageRequest.KernelLocation: not in the model": "Cirrus extension (direct kernel boot); not reachable over Query",
  "RegisterImage RegisterImageRequest.RamdiskLocation: not in the model": "Cirrus extension (direct kernel boot); not reachable over Query",
  "RegisterImage RegisterImageRequest.KernelCommandLine: not in the model": "Cirrus extension (direct kernel boot); not reachable over Query",
  "DescribeImages DescribeImagesResponse.Images.KernelLocation: not in the model": "Cirrus extension; not written in Query responses",
  "DescribeImages DescribeImagesResponse.Images.RamdiskLocation: not in the model": "Cirrus extension; not written in Query responses",
  "DescribeImages DescribeImagesResponse.Images.KernelCommandLine: not in the model": "Cirrus extension; not written in Query responses",
  "DeregisterImage DeregisterImageResponse.Return: the model has no output": "newer EC2 models (@aws-sdk/client-ec2) have DeregisterImageResult; the encoder writes EC2's <return>true</return>",
  "DeleteSecurityGroup DeleteSecurityGroupResponse.Return: the model has no output": "newer EC2 models have DeleteSecurityGroupResult; <return>true</return> is written",
  "DeleteSecurityGroup DeleteSecurityGroupResponse.GroupId: the model has no output": "newer EC2 models have DeleteSecurityGroupResult; GroupId is not written",
  "AuthorizeSecurityGroupEgress AuthorizeSecurityGroupRequest.GroupName: not in the model": "the message is shared with Ingress; Egress has no GroupName in EC2",
  "RevokeSecurityGroupEgress RevokeSecurityGroupRequest.GroupName: not in the model": "the message is shared with Ingress; Egress has no GroupName in EC2",
};

/** The differences between message `message` and structure `shape`, below `path`. */
function differences(message: string, shape: string, path: string, seen = new Set<string>()): string[] {
  if (seen.has(`${message} ${shape}`)) return [];
  seen.add(`${message} ${shape}`);
  const structure = shapeNamed(shape);
  if (structure.type !== "structure") return [`${path}: a message, but the model has a ${structure.type}`];
  const found: string[] = [];
  for (const [name, field] of Object.entries(computeDescriptors.messages[message]!)) {
    const member = structure.members[name];
    if (!member) found.push(`${path}.${name}: not in the model`);
    else found.push(...fieldDifferences(field, member.shape, `${path}.${name}`, seen));
  }
  return found;
}

function fieldDifferences(field: FieldDescriptor, shapeName: string, path: string, seen: Set<string>): string[] {
  const shape = shapeNamed(shapeName);
  if (field.repeated && shape.type !== "list") return [`${path}: repeated, but the model has a ${shape.type}`];
  if (!field.repeated && shape.type === "list") return [`${path}: not repeated, but the model has a list`];
  const elementName = shape.type === "list" ? shape.member.shape : shapeName;
  const element = shapeNamed(elementName);
  if (field.message) return differences(field.type, elementName, path, seen);
  if (element.type === "structure" || element.type === "list") return [`${path}: ${field.type}, but the model has a ${element.type}`];
  return COMPATIBLE[field.type]?.includes(element.type) ? [] : [`${path}: ${field.type}, but the model has ${element.type}`];
}

function allDifferences(): string[] {
  const found: string[] = [];
  for (const op of OPERATIONS) {
    const method = computeDescriptors.methods[op.name]!;
    const model = operationModel(op.name)!;
    found.push(...differences(method.request, model.input, `${op.name} ${method.request}`));
    if (model.output) found.push(...differences(method.response, model.output, `${op.name} ${method.response}`));
    else found.push(...Object.keys(computeDescriptors.messages[method.response]!).map((f) => `${op.name} ${method.response}.${f}: the model has no output`));
  }
  return found;
}

describe("compute.proto against EC2's model", () => {
  it("models every operation of the table", () => {
    expect(OPERATIONS.map((op) => op.name).filter((name) => !operationModel(name))).toEqual([]);
  });

  it("has every request and response field as a model member of the same name and a compatible type, but the known drift", () => {
    const found = allDifferences();
    expect(found.filter((d) => !(d in KNOWN_DRIFT)), "new differences between compute.proto and EC2's model").toEqual([]);
    expect(Object.keys(KNOWN_DRIFT).filter((d) => !found.includes(d)), "KNOWN_DRIFT entries that no longer differ").toEqual([]);
  });
});
