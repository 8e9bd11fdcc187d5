// The gRPC edge of EC2 errors: a category picks the status; the details are
// "<Code>: <message>" and the code also travels in the x-ec2-error-code
// trailer (compute.proto's header), which is what clients read.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { asEc2Error, type ErrorCategory } from "@cirrus/core";
import { EC2_ERROR_CODE_METADATA_KEY } from "@cirrus/proto";

const STATUS: Record<ErrorCategory, status> = {
  invalid: status.INVALID_ARGUMENT,
  "not-found": status.NOT_FOUND,
  conflict: status.ALREADY_EXISTS,
  precondition: status.FAILED_PRECONDITION,
  exhausted: status.RESOURCE_EXHAUSTED,
  unauthenticated: status.UNAUTHENTICATED,
  unsupported: status.UNIMPLEMENTED,
  internal: status.INTERNAL,
};

/** The gRPC error a server answers for `err`; anything but an Ec2Error becomes InternalError without its details. */
export function toGrpcError(err: unknown): Partial<ServiceError> {
  const e = asEc2Error(err);
  const metadata = new Metadata();
  metadata.set(EC2_ERROR_CODE_METADATA_KEY, e.code);
  return { code: STATUS[e.category], details: `${e.code}: ${e.message}`, metadata };
}
