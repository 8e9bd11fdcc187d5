// EC2 errors: one class for the whole domain layer, mapped to a transport's
// status only at the edge (gRPC here; the EC2 Query API later).
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

export type Ec2ErrorCode =
  | "AuthFailure"
  | "UnauthorizedOperation"
  | "InvalidParameterValue"
  | "InvalidParameterCombination"
  | "MissingParameter"
  | "InvalidAMIID.NotFound"
  | "InvalidAMIID.Malformed"
  | "InvalidAMIID.Unavailable"
  | "InvalidAMIName.Duplicate"
  | "InvalidAMIName.Malformed"
  | "InvalidKeyPair.NotFound"
  | "InvalidKeyPair.Duplicate"
  | "InvalidKey.Format"
  | "InvalidInstanceID.NotFound"
  | "InvalidInstanceID.Malformed"
  | "InvalidAvailabilityZone"
  | "InvalidZone.NotFound"
  | "InvalidRegion.NotFound" // not an EC2 code; EC2 answers InvalidParameterValue
  | "IncorrectInstanceState"
  | "InsufficientInstanceCapacity"
  | "IdempotentParameterMismatch"
  | "InvalidNextToken"
  | "InvalidFilter"
  | "TagLimitExceeded"
  | "InvalidVpcID.NotFound"
  | "InvalidVpcID.Malformed"
  | "InvalidVpc.Range"
  | "InvalidSubnetID.NotFound"
  | "InvalidSubnetID.Malformed"
  | "InvalidSubnet.Range"
  | "InvalidSubnet.Conflict"
  | "InvalidGroup.NotFound"
  | "InvalidGroupId.Malformed"
  | "InvalidGroup.Duplicate"
  | "InvalidGroup.Reserved"
  | "InvalidPermission.Duplicate"
  | "InvalidPermission.NotFound"
  | "InvalidPermission.Malformed"
  | "CannotDelete"
  | "DependencyViolation"
  | "InvalidAllocationID.NotFound"
  | "InvalidAssociationID.NotFound"
  | "InvalidAddress.NotFound"
  | "InvalidIPAddress.InUse"
  | "AddressLimitExceeded"
  | "InsufficientFreeAddressesInSubnet"
  | "Resource.AlreadyAssociated"
  | "InvalidInstanceID"
  | "Unsupported"
  | "InvalidAction"
  | "InternalError";

const grpcStatusByCode: Partial<Record<Ec2ErrorCode, status>> = {
  AuthFailure: status.UNAUTHENTICATED,
  UnauthorizedOperation: status.PERMISSION_DENIED,
  "InvalidAMIID.NotFound": status.NOT_FOUND,
  "InvalidInstanceID.NotFound": status.NOT_FOUND,
  "InvalidZone.NotFound": status.NOT_FOUND,
  "InvalidVpcID.NotFound": status.NOT_FOUND,
  "InvalidSubnetID.NotFound": status.NOT_FOUND,
  "InvalidGroup.NotFound": status.NOT_FOUND,
  "InvalidPermission.NotFound": status.NOT_FOUND,
  "InvalidAllocationID.NotFound": status.NOT_FOUND,
  "InvalidAssociationID.NotFound": status.NOT_FOUND,
  "InvalidAddress.NotFound": status.NOT_FOUND,
  "InvalidGroup.Duplicate": status.ALREADY_EXISTS,
  "InvalidPermission.Duplicate": status.ALREADY_EXISTS,
  DependencyViolation: status.FAILED_PRECONDITION,
  "Resource.AlreadyAssociated": status.FAILED_PRECONDITION,
  "InvalidIPAddress.InUse": status.FAILED_PRECONDITION,
  AddressLimitExceeded: status.RESOURCE_EXHAUSTED,
  InsufficientFreeAddressesInSubnet: status.RESOURCE_EXHAUSTED,
  IncorrectInstanceState: status.FAILED_PRECONDITION,
  "InvalidAMIID.Unavailable": status.FAILED_PRECONDITION,
  IdempotentParameterMismatch: status.ALREADY_EXISTS,
  "InvalidAMIName.Duplicate": status.ALREADY_EXISTS,
  "InvalidKeyPair.NotFound": status.NOT_FOUND,
  "InvalidKeyPair.Duplicate": status.ALREADY_EXISTS,
  InsufficientInstanceCapacity: status.RESOURCE_EXHAUSTED,
  TagLimitExceeded: status.INVALID_ARGUMENT,
  Unsupported: status.UNIMPLEMENTED,
  InvalidAction: status.UNIMPLEMENTED,
  InternalError: status.INTERNAL,
};

export class Ec2Error extends Error {
  constructor(
    readonly code: Ec2ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "Ec2Error";
  }
}

export const ERROR_CODE_METADATA_KEY = "x-ec2-error-code";

/** The gRPC error a server returns for `err`; unknown errors become InternalError without leaking details. */
export function toGrpcError(err: unknown): Partial<ServiceError> {
  const e = err instanceof Ec2Error ? err : new Ec2Error("InternalError", "An internal error has occurred.");
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, e.code);
  return { code: grpcStatusByCode[e.code] ?? status.INVALID_ARGUMENT, details: `${e.code}: ${e.message}`, metadata };
}

/** The Ec2Error a client receives inside a gRPC error, or undefined if it is not one. */
export function fromGrpcError(err: unknown): Ec2Error | undefined {
  const se = err as Partial<ServiceError>;
  const code = se?.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  if (typeof code !== "string") return undefined;
  const details = se.details ?? "";
  return new Ec2Error(code as Ec2ErrorCode, details.startsWith(`${code}: `) ? details.slice(code.length + 2) : details);
}
