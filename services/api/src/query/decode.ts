// Query requests: form parameters (`InstanceId.1=i-…`, `Filter.1.Name=…`)
// decoded by EC2's Query rules against the action's input shape in EC2's
// model, into a plain object keyed by the model's member names with real JS
// values, which is what the operation's request codec reads
// (`op.request.fromJSON`). Strict on purpose: a parameter the model does not
// have, a list numbered with gaps or a malformed number is refused with
// EC2's error, never dropped or guessed at.
import { Ec2Error, type Ec2ErrorCode } from "@cirrus/core";
import { computeDescriptors, type ComputeDescriptors } from "@cirrus/proto";
import { membersByInputName, operationModel, shapeNamed, structureNamed, type ListShape, type ScalarShape, type Shape, type StructureShape } from "./model.js";

/** The parameters under one name prefix: the value sent for the name itself, and the names one level down. */
interface ParamNode {
  value?: string;
  readonly children: Map<string, ParamNode>;
  /** The first parameter sent under this prefix, as sent: what an error names. */
  readonly sent: string;
}

/** The longest part of a value quoted back in an error (UserData may be 16 KiB). */
const QUOTED_VALUE_MAX = 64;

function refuse(code: Ec2ErrorCode, message: string): never {
  throw new Ec2Error(code, message);
}

function invalidValue(name: string, value: string, expected: string): never {
  const quoted = value.length > QUOTED_VALUE_MAX ? `${value.slice(0, QUOTED_VALUE_MAX)}…` : value;
  refuse("InvalidParameterValue", `Invalid value '${quoted}' for ${name}: ${expected}`);
}

function unknown(name: string): never {
  refuse("UnknownParameter", `The parameter ${name} is not recognized`);
}

/** The parameters as a tree on their dot-separated names. Throws for a name given twice or with an empty part. */
function paramTree(params: ReadonlyArray<readonly [string, string]>): ParamNode {
  const root: ParamNode = { children: new Map(), sent: "" };
  for (const [name, value] of params) {
    let node = root;
    for (const part of name.split(".")) {
      if (part === "") unknown(name);
      let child = node.children.get(part);
      if (!child) {
        child = { children: new Map(), sent: name };
        node.children.set(part, child);
      }
      node = child;
    }
    if (node.value !== undefined) refuse("InvalidParameterValue", `The parameter ${name} is given more than once`);
    node.value = value;
  }
  return root;
}

function decodeStructure(shape: StructureShape, node: ParamNode, name: string): Record<string, unknown> {
  if (node.value !== undefined) invalidValue(name, node.value, `expected parameters ${name}.<name>`);
  const byInput = membersByInputName(shape);
  const out: Record<string, unknown> = {};
  for (const [part, child] of node.children) {
    const path = name === "" ? part : `${name}.${part}`;
    const memberName = byInput.get(part);
    if (memberName === undefined) unknown(child.sent);
    out[memberName] = decodeValue(shapeNamed(shape.members[memberName]!.shape), child, path);
  }
  return out;
}

/** A list: `name.1`, `name.2`…, numbered from 1 without gaps, in any order. */
function decodeList(shape: ListShape, node: ParamNode, name: string): unknown[] {
  if (node.value !== undefined) invalidValue(name, node.value, `expected a list ${name}.1, ${name}.2, …`);
  for (const index of node.children.keys()) {
    if (!/^[1-9][0-9]*$/.test(index)) refuse("InvalidParameterValue", `The parameter ${name}.${index} has an invalid list index: indexes are 1, 2, 3, …`);
  }
  // n distinct indexes from 1 without a gap are exactly 1..n.
  const items = Array.from({ length: node.children.size }, (_, i) => {
    const child = node.children.get(String(i + 1));
    if (!child) refuse("InvalidParameterValue", `The list ${name} has no ${name}.${i + 1}: indexes must run 1, 2, 3, … without gaps`);
    return child;
  });
  const element = shapeNamed(shape.member.shape);
  return items.map((child, i) => decodeValue(element, child, `${name}.${i + 1}`));
}

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
// A long arrives as a JS number (ts-proto's forceLong=number): only the exact ones.
const LONG = { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER };
const DECIMAL = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
// ISO 8601 date-time (as the AWS SDKs send it), with a zone.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeScalar(shape: ScalarShape, value: string, name: string): unknown {
  switch (shape.type) {
    case "string":
      return value;
    case "integer":
    case "long": {
      const range = shape.type === "integer" ? INT32 : LONG;
      const n = /^[+-]?[0-9]+$/.test(value) ? Number(value) : NaN;
      if (!(n >= range.min && n <= range.max)) invalidValue(name, value, `expected an integer from ${range.min} to ${range.max}`);
      return n;
    }
    case "float":
    case "double": {
      const n = DECIMAL.test(value) ? Number(value) : NaN;
      if (!Number.isFinite(n)) invalidValue(name, value, "expected a number");
      return n;
    }
    case "boolean": {
      const lower = value.toLowerCase();
      if (lower !== "true" && lower !== "false") invalidValue(name, value, "expected true or false");
      return lower === "true";
    }
    case "timestamp": {
      const t = DATE_TIME.test(value) ? Date.parse(value) : NaN;
      if (Number.isNaN(t)) invalidValue(name, value, "expected an ISO 8601 date and time, e.g. 2024-01-31T12:00:00Z");
      return new Date(t).toISOString();
    }
    case "blob":
      // Kept as the base64 text: that is what the request codecs read for bytes.
      if (!BASE64.test(value)) invalidValue(name, value, "expected base64");
      return value;
  }
}

function decodeValue(shape: Shape, node: ParamNode, name: string): unknown {
  if (shape.type === "structure") return decodeStructure(shape, node, name);
  if (shape.type === "list") return decodeList(shape, node, name);
  // A scalar has no parameters under it: the first one is unknown. Without
  // one, the node exists because its name was sent, so it has a value.
  const [first] = node.children.values();
  if (first !== undefined) unknown(first.sent);
  return decodeScalar(shape, node.value!, name);
}

/**
 * The input of `action` from its Query parameters.
 *
 * Preconditions: `action` is in the generated model (`operationModel`), and
 * the protocol's own parameters (`Action`, `Version`, SigV4's `X-Amz-*`)
 * are removed from `params`.
 *
 * Postconditions: the result is keyed by the model's member names, nested as
 * the input shape is (e.g. `{ SecurityGroupIds: ["sg-…"], TagSpecifications:
 * [{ ResourceType, Tags: [{ Key, Value }] }] }`), holding exactly the
 * members sent: strings as sent, integers and longs as numbers (in range),
 * booleans from true/false (any case), timestamps as ISO 8601 strings
 * (normalised to UTC), blobs as their base64 text, lists as arrays in index
 * order. Every parameter is accounted for, or it throws an Ec2Error:
 * UnknownParameter for a name the input shape does not have (or a name
 * below a scalar), naming the parameter as sent; InvalidParameterValue for a name given twice, a list
 * index that is not 1, 2, … without gaps (`Name.0`, `Name.x`, `Name.01`, a
 * gap), a value for a list or structure itself, or a malformed value.
 */
export function decodeRequest(action: string, params: ReadonlyArray<readonly [string, string]>): Record<string, unknown> {
  const op = operationModel(action);
  if (!op) throw new Error(`the Query model has no action ${action}`);
  return decodeStructure(structureNamed(op.input), paramTree(params), "");
}

/** True when the decoded request asks for a dry run (`DryRun=true`), which the server answers itself. */
export function isDryRun(decoded: Readonly<Record<string, unknown>>): boolean {
  return decoded.DryRun === true;
}

/**
 * The parameters of a decoded request that Cirrus's request message cannot
 * carry: EC2 has them, Cirrus does not implement them, and the server
 * should answer `Unsupported` ("The parameter IamInstanceProfile is not
 * supported by Cirrus") rather than act as if they were not sent.
 *
 * `decoded` is `decodeRequest(action, …)`'s answer; `message` the request
 * message's name in `descriptors` (compute.proto's, by default).
 *
 * Postconditions: each entry is a parameter name as it is sent (e.g.
 * `IamInstanceProfile`, `BlockDeviceMapping.1.Ebs.Iops`), in the order of
 * `decoded`, naming the outermost member the message lacks (its members are
 * not listed again); the top-level `DryRun` is never listed (see
 * `isDryRun`); empty when the message carries everything sent. Throws when
 * `message` is not in `descriptors`.
 */
export function unsupportedParameters(
  action: string,
  decoded: Readonly<Record<string, unknown>>,
  message: string,
  descriptors: ComputeDescriptors = computeDescriptors,
): string[] {
  const op = operationModel(action);
  if (!op) throw new Error(`the Query model has no action ${action}`);
  const { DryRun: _dryRun, ...rest } = decoded;
  const found: string[] = [];
  collectUnsupported(structureNamed(op.input), rest, message, "", descriptors, found);
  return found;
}

function collectUnsupported(
  shape: StructureShape,
  value: Readonly<Record<string, unknown>>,
  message: string,
  prefix: string,
  descriptors: ComputeDescriptors,
  found: string[],
): void {
  const fields = descriptors.messages[message];
  if (!fields) throw new Error(`no message ${message} in the descriptors`);
  const inputNames = new Map([...membersByInputName(shape)].map(([input, member]) => [member, input]));
  for (const [memberName, memberValue] of Object.entries(value)) {
    const path = `${prefix}${inputNames.get(memberName) ?? memberName}`;
    const field = fields[memberName];
    if (!field) {
      found.push(path);
      continue;
    }
    if (!field.message) continue;
    // The field is a message: look inside the structure, or each structure of a list.
    const memberShape = shapeNamed(shape.members[memberName]!.shape);
    if (memberShape.type === "structure") {
      collectUnsupported(memberShape, memberValue as Record<string, unknown>, field.type, `${path}.`, descriptors, found);
    } else if (memberShape.type === "list") {
      const element = shapeNamed(memberShape.member.shape);
      if (element.type !== "structure") continue;
      (memberValue as Record<string, unknown>[]).forEach((item, i) => collectUnsupported(element, item, field.type, `${path}.${i + 1}.`, descriptors, found));
    }
  }
}
