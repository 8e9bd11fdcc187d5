// Input validation shared by the domain operations. Every check throws an
// Ec2Error with EC2's code and wording before anything is written.
import { createHash } from "node:crypto";
import { isId } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import { Ec2Error } from "./errors.js";
import type { IdShape } from "./resource.js";

/** Throws the kind's Malformed error unless every id is well-formed. */
export function requireIds(shape: IdShape, ids: readonly string[]): void {
  for (const id of ids) {
    if (!isId(shape.idPrefix, id)) throw new Ec2Error(shape.malformed, `Invalid id: "${truncate(id)}"`);
  }
}

export function requireNonEmpty(name: string, values: readonly unknown[]): void {
  if (values.length === 0) throw new Ec2Error("MissingParameter", `The request must contain the parameter ${name}`);
}

/**
 * Throws unless `attribute` (a *Attribute action's Attribute) is one Cirrus
 * answers (`served`): MissingParameter when it is empty, Unsupported when
 * it is one of EC2's that Cirrus does not answer (`unserved`),
 * InvalidParameterValue for any other.
 */
export function requireAttribute(attribute: string, served: readonly string[], unserved: readonly string[] = []): void {
  if (!attribute) throw new Ec2Error("MissingParameter", "The request must contain the parameter Attribute");
  if (served.includes(attribute)) return;
  if (unserved.includes(attribute)) throw new Ec2Error("Unsupported", `The attribute ${attribute} is not supported by Cirrus; it answers ${served.join(", ")}.`);
  throw new Ec2Error("InvalidParameterValue", `Value (${truncate(attribute)}) for parameter attribute is invalid. Unknown attribute.`);
}

export function truncate(s: string, max = 64): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

export const MAX_TAGS = 50;

/** Validates EC2 tag limits: keys 1..128, values 0..256 characters, no `aws:` prefix, at most 50, unique keys. */
export function validateTags(tags: readonly compute.Tag[]): void {
  if (tags.length > MAX_TAGS) throw new Ec2Error("TagLimitExceeded", `The maximum number of tags per resource is ${MAX_TAGS}.`);
  const seen = new Set<string>();
  for (const { Key, Value } of tags) {
    if (Key.length < 1 || [...Key].length > 128) throw new Ec2Error("InvalidParameterValue", `Tag key must be 1 to 128 characters long: "${truncate(Key)}"`);
    if ([...Value].length > 256) throw new Ec2Error("InvalidParameterValue", `Tag value for key "${truncate(Key)}" exceeds the maximum length of 256 characters`);
    if (Key.toLowerCase().startsWith("aws:")) throw new Ec2Error("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use");
    if (seen.has(Key)) throw new Ec2Error("InvalidParameterValue", `Duplicate tag key "${truncate(Key)}"`);
    seen.add(Key);
  }
}

/** Tags for `resourceType` from TagSpecifications; rejects resource types the operation does not create. */
export function tagsFor(resourceType: string, specs: readonly compute.TagSpecification[], allowed: readonly string[]): compute.Tag[] {
  const tags: compute.Tag[] = [];
  for (const spec of specs) {
    if (!allowed.includes(spec.ResourceType)) {
      throw new Ec2Error("InvalidParameterValue", `'${truncate(spec.ResourceType)}' is not a valid taggable resource type for this operation.`);
    }
    if (spec.ResourceType === resourceType) tags.push(...spec.Tags);
  }
  validateTags(tags);
  return tags;
}

/** MaxResults for a paginated Describe call (EC2 range 5..1000, default all). */
export function pageSize(maxResults: number | undefined, hasIds: boolean): number {
  if (maxResults === undefined) return 1000;
  if (hasIds) throw new Ec2Error("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults");
  if (!Number.isInteger(maxResults) || maxResults < 5 || maxResults > 1000) {
    throw new Ec2Error("InvalidParameterValue", `Value (${maxResults}) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
  }
  return maxResults;
}

/** Opaque NextToken carrying the sort key after which the next page starts. */
export function encodeToken(key: string[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

export function decodeToken(token: string): string[] | undefined {
  if (!token) return undefined;
  try {
    const key: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (Array.isArray(key) && key.every((k) => typeof k === "string")) return key;
  } catch {
    // fall through
  }
  throw new Ec2Error("InvalidNextToken", "The specified token is not valid.");
}

/** EC2's rule for a ClientToken: at most 64 printable ASCII characters. */
export function requireClientToken(token: string): void {
  if (token.length > 64 || !/^[\x21-\x7e]*$/.test(token)) {
    throw new Ec2Error("InvalidParameterValue", "ClientToken must be at most 64 printable ASCII characters");
  }
}

/** A hash of a request without its ClientToken, to tell a retry (same hash) from a token reused for another request. */
export function requestHash(req: { ClientToken: string }): string {
  const { ClientToken: _token, ...rest } = req;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex");
}
