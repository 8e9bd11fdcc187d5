// The operation table: every EC2 action Cirrus serves, each declared beside
// its resource (operation.ts says what an entry holds). The gRPC server and
// the CLI are loops over this table; adding an action is adding its entry
// where its resource lives, and listing it here.
import { catalogueOperations } from "./catalogue.js";
import { imageAttributeOperations } from "./imageAttributes.js";
import { imageOperations } from "./images.js";
import { instanceAttributeOperations } from "./instances/attributes.js";
import { getConsoleOutput } from "./instances/console.js";
import { describeInstances } from "./instances/describe.js";
import { runInstancesOperation } from "./instances/run.js";
import { instanceStateOperations } from "./instances/transitions.js";
import { keyPairOperations } from "./keyPairs.js";
import { addressOperations } from "./network/addresses.js";
import { securityGroupOperations } from "./network/securityGroups.js";
import { vpcOperations } from "./network/vpcs.js";
import type { AnyOperation } from "./operation.js";
import { tagOperations } from "./tagging.js";
import { snapshotSharingOperations } from "./volumes/snapshotSharing.js";
import { snapshotOperations } from "./volumes/snapshots.js";
import { volumeModificationOperations } from "./volumes/modify.js";
import { volumeStatusOperations } from "./volumes/status.js";
import { volumeOperations } from "./volumes/volumes.js";

export const OPERATIONS: readonly AnyOperation[] = [
  runInstancesOperation,
  describeInstances,
  ...instanceStateOperations,
  getConsoleOutput,
  ...instanceAttributeOperations,
  ...imageOperations,
  ...imageAttributeOperations,
  ...catalogueOperations,
  ...keyPairOperations,
  ...vpcOperations,
  ...securityGroupOperations,
  ...addressOperations,
  ...volumeOperations,
  ...volumeStatusOperations,
  ...volumeModificationOperations,
  ...snapshotOperations,
  ...snapshotSharingOperations,
  ...tagOperations,
];

/** The operation named `name` (an EC2 action), if Cirrus serves it. */
export function operationNamed(name: string): AnyOperation | undefined {
  return OPERATIONS.find((op) => op.name === name);
}
