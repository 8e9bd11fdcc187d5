// The resource registry: every kind Cirrus has, declared in its own module
// (resource.ts says what a kind declares). Adding a kind is adding it here.
import { imageKind } from "./images.js";
import { instanceKind } from "./instances/model.js";
import { keyPairKind } from "./keyPairs.js";
import { addressKind } from "./network/addresses.js";
import { securityGroupKind } from "./network/securityGroups.js";
import { subnetKind, vpcKind } from "./network/vpcs.js";
import type { ResourceKind } from "./resource.js";
import { snapshotKind, volumeKind } from "./volumes/model.js";

export const KINDS: readonly ResourceKind<any, unknown>[] = [instanceKind, imageKind, keyPairKind, vpcKind, subnetKind, securityGroupKind, addressKind, volumeKind, snapshotKind];

/** The kind whose ids look like `id` (by prefix), if any. */
export function kindOfId(id: string): ResourceKind<any, unknown> | undefined {
  const prefix = id.slice(0, id.indexOf("-"));
  return KINDS.find((k) => k.idPrefix === prefix);
}

/** The kind EC2 calls `resourceType` ("instance", "security-group"…), if any. */
export function kindOfResourceType(resourceType: string): ResourceKind<any, unknown> | undefined {
  return KINDS.find((k) => k.resourceType === resourceType);
}
