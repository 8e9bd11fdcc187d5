// Query responses: an operation's response message written as EC2's XML by
// walking the action's output shape in EC2's model (element names are the
// members' locationNames: `reservationSet`, `instancesSet`, list elements
// `item`), and EC2's error document. Written by hand rather than with an
// XML builder: the document is a plain tree of elements without attributes
// (but the namespace), and the one thing to get right, escaping, is below.
import { Buffer } from "node:buffer";
import { MODEL_VERSION, operationModel, outputName, shapeNamed, structureNamed, type Member, type ScalarShape, type Shape, type StructureShape } from "./model.js";

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';
// EC2 writes the namespace with a trailing slash (the model's has none).
const NAMESPACE = `http://ec2.amazonaws.com/doc/${MODEL_VERSION}/`;

// Characters XML 1.0 cannot carry at all (C0 controls but tab, LF and CR;
// U+FFFE, U+FFFF; unpaired surrogates): written as U+FFFD, so the document
// stays well-formed whatever a message holds.
// eslint-disable-next-line no-control-regex -- matching the control characters is the point
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** Any character that escapeXmlText would change. */
// eslint-disable-next-line no-control-regex -- as above
const NEEDS_ESCAPE = /[&<>\r\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/;

/**
 * `text` as XML character data. Postconditions: the result is well-formed
 * content that a parser reads back as `text`, except that characters XML
 * cannot carry become U+FFFD; CR is written as a reference because parsers
 * turn a literal CR into LF.
 */
export function escapeXmlText(text: string): string {
  // Most texts (ids, names, states) need nothing: one test instead of five replaces.
  if (!NEEDS_ESCAPE.test(text)) return text;
  return text
    .replace(NOT_XML, "\uFFFD")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/\r/g, "&#xD;");
}

function element(name: string, content: string): string {
  return content === "" ? `<${name}/>` : `<${name}>${content}</${name}>`;
}

function mismatch(path: string, shape: Shape, value: unknown): never {
  throw new Error(`cannot encode ${path}: the model says ${shape.type}, the message has ${typeof value} ${JSON.stringify(value)}`);
}

/** A scalar's text; undefined when the value is not written (an empty string). */
function scalarText(shape: ScalarShape, value: unknown, path: string): string | undefined {
  switch (shape.type) {
    case "string":
    case "timestamp": // Cirrus's messages hold timestamps as ISO 8601 strings already.
      if (typeof value !== "string") mismatch(path, shape, value);
      return value === "" ? undefined : escapeXmlText(value);
    case "integer":
    case "long":
    case "float":
    case "double":
      if (typeof value !== "number") mismatch(path, shape, value);
      return String(value);
    case "boolean":
      if (typeof value !== "boolean") mismatch(path, shape, value);
      return String(value);
    case "blob":
      if (!(value instanceof Uint8Array)) mismatch(path, shape, value);
      return Buffer.from(value).toString("base64");
  }
}

/**
 * The members of `value` that `shape` has, as elements in the model's order.
 *
 * Omitted: members that are undefined or null (a proto3 `optional` not
 * set, a message field not set), strings that are empty (proto3's default,
 * i.e. not set; EC2 leaves unset strings out), and structures with nothing
 * in them. Written: numbers and booleans always (a proto3 0 or false is a
 * value: InstanceState's Code 0 is pending); lists always, an empty one as
 * an empty element (see `encodeList`).
 *
 * One exception to empty strings: the `Value` beside a `Key` (a tag) is
 * written as `<value/>`, read back as "": a tag's empty value is a value
 * (CreateTags takes it), and scripts read `tag["Value"]` without a default.
 */
function encodeMembers(shape: StructureShape, value: Readonly<Record<string, unknown>>, path: string): string {
  let out = "";
  for (const { memberName, member, name, emptyWritten } of membersOf(shape)) {
    const memberValue = value[memberName];
    if (memberValue === undefined || memberValue === null) continue;
    if (emptyWritten && memberValue === "") {
      out += `<${name}/>`;
      continue;
    }
    out += encodeMember(member, memberValue, name, `${path}.${memberName}`);
  }
  return out;
}

interface OutputMember {
  memberName: string;
  member: Member;
  /** The element's name. */
  name: string;
  /** A tag's Value: written even when empty (above). */
  emptyWritten: boolean;
}

const outputMembers = new WeakMap<StructureShape, readonly OutputMember[]>();

/** The structure's members as written, worked out once per shape: a DescribeInstances of 1,000 walks the Instance shape 1,000 times. */
function membersOf(shape: StructureShape): readonly OutputMember[] {
  let members = outputMembers.get(shape);
  if (!members) {
    members = Object.entries(shape.members).map(([memberName, member]) => ({
      memberName, member, name: outputName(memberName, member), emptyWritten: memberName === "Value" && Object.hasOwn(shape.members, "Key"),
    }));
    outputMembers.set(shape, members);
  }
  return members;
}

function encodeMember(member: Member, value: unknown, name: string, path: string): string {
  const shape = shapeNamed(member.shape);
  if (shape.type === "structure") {
    if (typeof value !== "object" || value === null || Array.isArray(value)) mismatch(path, shape, value);
    const content = encodeMembers(shape, value as Record<string, unknown>, path);
    return content === "" ? "" : element(name, content);
  }
  if (shape.type === "list") {
    if (!Array.isArray(value)) mismatch(path, shape, value);
    return element(name, encodeList(shape.member, value, path));
  }
  const text = scalarText(shape, value, path);
  return text === undefined ? "" : element(name, text);
}

/**
 * A list's elements, each named by the list member's locationName (EC2:
 * `item`; the protocol's default is `member`).
 *
 * An empty list is written as an empty element (`<reservationSet/>`), which
 * the SDKs read as [] (botocore, the aws CLI: `"Reservations": []`), while a
 * missing element reads as no key at all. EC2 writes most empty lists so
 * (`reservationSet`, `groupSet`, `ipRanges`…) and clients index them
 * without a default (`perm["IpRanges"]`); a proto3 repeated field cannot
 * tell "empty" from "not set" anyway. Where EC2 leaves a list out (the
 * `tagSet` of an untagged resource) clients get [] instead of no key, which
 * anything written for tagged resources accepts.
 */
function encodeList(member: Member, items: readonly unknown[], path: string): string {
  const name = member.locationName ?? "member";
  return items
    .map((item, i) => {
      if (item === undefined || item === null) mismatch(`${path}[${i}]`, shapeNamed(member.shape), item);
      // An element with nothing in it (an empty string, an empty structure) is still an element of the list.
      return encodeMember(member, item, name, `${path}[${i}]`) || `<${name}/>`;
    })
    .join("");
}

/**
 * The XML of `action`'s successful response.
 *
 * Preconditions: `action` is in the generated model (`operationModel`);
 * `message` is its response message (a ts-proto object: every field
 * present with its default, `optional` ones possibly undefined), whose
 * fields are members of the output shape with compatible types (the drift
 * test checks compute.proto against the model).
 *
 * Postconditions: a well-formed document `<{action}Response
 * xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` whose first element is
 * `<requestId>`, then the output shape's members as `encodeMembers` and
 * `encodeList` say, no Result wrapper (EC2's way). Fields of `message` the
 * model lacks (Cirrus extensions) are not written. When the model declares
 * no output, the body is `<return>true</return>`, as EC2 answers such
 * actions (RebootInstances, CreateTags…). Throws an Error (an internal
 * error for the caller) when a value's type disagrees with the model.
 */
export function encodeResponse(action: string, message: unknown, requestId: string): string {
  const op = operationModel(action);
  if (!op) throw new Error(`the Query model has no action ${action}`);
  let body: string;
  if (op.output === undefined) body = "<return>true</return>";
  else if (typeof message === "object" && message !== null) body = encodeMembers(structureNamed(op.output), message as Record<string, unknown>, action);
  else throw new Error(`cannot encode ${action}: the response is ${typeof message}`);
  const root = `${action}Response`;
  return `${DECLARATION}<${root} xmlns="${NAMESPACE}"><requestId>${escapeXmlText(requestId)}</requestId>${body}</${root}>`;
}

/**
 * EC2's error document. Postconditions: well-formed
 * `<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>`
 * with the three texts escaped (`escapeXmlText`).
 */
export function encodeError(code: string, message: string, requestId: string): string {
  return `${DECLARATION}<Response><Errors><Error><Code>${escapeXmlText(code)}</Code><Message>${escapeXmlText(message)}</Message></Error></Errors>`
    + `<RequestID>${escapeXmlText(requestId)}</RequestID></Response>`;
}
