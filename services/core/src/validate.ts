// Input validation shared by the domain operations. Every check throws an
// Ec2Error with EC2's code and wording before anything is written.
import { Ec2Error, isId, type IdPrefix } from "@cirrus/common";
import type { compute } from "@cirrus/proto";

const malformedCode = {
  i: "InvalidInstanceID.Malformed",
  ami: "InvalidAMIID.Malformed",
  vpc: "InvalidVpcID.Malformed",
  subnet: "InvalidSubnetID.Malformed",
  sg: "InvalidGroupId.Malformed",
  // EC2 answers NotFound for malformed allocation and association ids.
  eipalloc: "InvalidAllocationID.NotFound",
  eipassoc: "InvalidAssociationID.NotFound",
} as const;

/** Throws the resource's Malformed error unless every id is well-formed. */
export function requireIds(prefix: keyof typeof malformedCode, ids: readonly string[]): void {
  for (const id of ids) {
    if (!isId(prefix as IdPrefix, id)) throw new Ec2Error(malformedCode[prefix], `Invalid id: "${truncate(id)}"`);
  }
}

export function requireNonEmpty(name: string, values: readonly unknown[]): void {
  if (values.length === 0) throw new Ec2Error("MissingParameter", `The request must contain the parameter ${name}`);
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

/** Tags for `resourceType` from TagSpecifications; rejects other resource types. */
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
