// EC2 errors: one class for the whole core and one catalogue of the codes it
// uses. Each code has a transport-neutral category; every transport maps a
// category to its own status at its edge (services/api/src/grpc/errors.ts for
// gRPC). Nothing here knows about a transport.

/** What kind of failure a code is, for transports to pick a status. */
export type ErrorCategory =
  /** The request is wrong (bad or missing parameter); retrying it unchanged cannot help. */
  | "invalid"
  /** A named resource does not exist (or is not the caller's). */
  | "not-found"
  /** The resource exists already, or a token was reused with other parameters. */
  | "conflict"
  /** The resource's state forbids the action now. */
  | "precondition"
  /** Out of capacity, addresses or a quota. */
  | "exhausted"
  /** The caller could not be authenticated. */
  | "unauthenticated"
  /** Not implemented by Cirrus. */
  | "unsupported"
  /** Cirrus failed; the caller may retry. */
  | "internal";

const CATALOGUE = {
  AuthFailure: "unauthenticated",
  // Signature Version 4 (services/api/src/query/sigv4.ts); EC2 answers both with 400.
  IncompleteSignature: "invalid",
  RequestExpired: "invalid",
  InvalidParameterValue: "invalid",
  InvalidParameterCombination: "invalid",
  MissingParameter: "invalid",
  // A Query parameter the action's input does not have (services/api/src/query/decode.ts).
  UnknownParameter: "invalid",
  InvalidNextToken: "invalid",
  InvalidID: "invalid",
  TagLimitExceeded: "invalid",
  "InvalidAMIID.NotFound": "not-found",
  "InvalidAMIID.Malformed": "invalid",
  "InvalidAMIName.Duplicate": "conflict",
  "InvalidAMIName.Malformed": "invalid",
  // A launch permission that is neither the group "all" nor a 12-digit account id (ModifyImageAttribute).
  InvalidAMIAttributeItemValue: "invalid",
  // An owner or executable-by value that is neither an account id nor one of DescribeImages' aliases.
  "InvalidUserID.Malformed": "invalid",
  "InvalidKeyPair.NotFound": "not-found",
  "InvalidKeyPair.Duplicate": "conflict",
  "InvalidKey.Format": "invalid",
  "InvalidInstanceID.NotFound": "not-found",
  "InvalidInstanceID.Malformed": "invalid",
  InvalidInstanceID: "precondition",
  // DescribeInstanceCreditSpecifications naming an instance that is not burstable.
  "InstanceCreditSpecification.NotSupported": "invalid",
  IncorrectInstanceState: "precondition",
  "InvalidHostId.NotFound": "not-found",
  IncorrectHostState: "precondition",
  InsufficientInstanceCapacity: "exhausted",
  IdempotentParameterMismatch: "conflict",
  "InvalidVpcID.NotFound": "not-found",
  "InvalidVpcID.Malformed": "invalid",
  "InvalidSubnetID.NotFound": "not-found",
  "InvalidSubnetID.Malformed": "invalid",
  "InvalidSubnet.Range": "invalid",
  "InvalidSubnet.Conflict": "conflict",
  "InvalidGroup.NotFound": "not-found",
  "InvalidGroupId.Malformed": "invalid",
  "InvalidGroup.Duplicate": "conflict",
  "InvalidPermission.Duplicate": "conflict",
  "InvalidPermission.NotFound": "not-found",
  "InvalidPermission.Malformed": "invalid",
  CannotDelete: "precondition",
  DependencyViolation: "precondition",
  "InvalidAllocationID.NotFound": "not-found",
  "InvalidAssociationID.NotFound": "not-found",
  "InvalidAddress.NotFound": "not-found",
  "InvalidIPAddress.InUse": "precondition",
  AddressLimitExceeded: "exhausted",
  InsufficientFreeAddressesInSubnet: "exhausted",
  "Resource.AlreadyAssociated": "precondition",
  // Volumes and snapshots (volumes/).
  "InvalidVolume.NotFound": "not-found",
  "InvalidVolume.Malformed": "invalid",
  "InvalidVolume.ZoneMismatch": "invalid",
  VolumeInUse: "precondition",
  "InvalidAttachment.NotFound": "not-found",
  AttachmentLimitExceeded: "exhausted",
  "InvalidSnapshot.NotFound": "not-found",
  "InvalidSnapshot.Malformed": "invalid",
  "InvalidSnapshot.InUse": "precondition",
  IncorrectState: "precondition",
  IncorrectModificationState: "precondition",
  "InvalidVolumeModification.NotFound": "not-found",
  InvalidBlockDeviceMapping: "invalid",
  InvalidInstanceAttributeValue: "invalid",
  "InvalidZone.NotFound": "not-found",
  Unsupported: "unsupported",
  // The Query protocol itself (services/api/src/query/server.ts).
  InvalidRequest: "invalid",
  MissingAction: "invalid",
  InvalidAction: "invalid",
  NoSuchVersion: "invalid",
  /** A DryRun that would have succeeded (dryRun.ts). */
  DryRunOperation: "precondition",
  // Accounts and access keys (cirrus-admin), in IAM's words.
  NoSuchEntity: "not-found",
  EntityAlreadyExists: "conflict",
  LimitExceeded: "exhausted",
  InternalError: "internal",
} as const satisfies Record<string, ErrorCategory>;

export type Ec2ErrorCode = keyof typeof CATALOGUE;

export class Ec2Error extends Error {
  constructor(
    readonly code: Ec2ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "Ec2Error";
  }

  get category(): ErrorCategory {
    return CATALOGUE[this.code];
  }
}

/** The error a transport answers for anything thrown: an Ec2Error as it is, anything else as InternalError without its details. */
export function asEc2Error(err: unknown): Ec2Error {
  return err instanceof Ec2Error ? err : new Ec2Error("InternalError", "An internal error has occurred.");
}
