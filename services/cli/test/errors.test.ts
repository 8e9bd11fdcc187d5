import { Metadata, status } from "@grpc/grpc-js";
import { toGrpcError } from "@cirrus/api/grpc";
import { Ec2Error } from "@cirrus/core";
import { describe, expect, it } from "vitest";
import { operationName, toCliError } from "../src/client.js";
import { EndpointError, ExitCode, formatServiceError, ServiceError } from "../src/errors.js";

describe("service errors", () => {
  it("read like the aws CLI's", () => {
    expect(formatServiceError("InvalidInstanceID.NotFound", "DescribeInstances", "The instance ID 'i-1' does not exist")).toBe(
      "An error occurred (InvalidInstanceID.NotFound) when calling the DescribeInstances operation: The instance ID 'i-1' does not exist",
    );
  });

  it("come from the EC2 code in the gRPC error (exit 254)", () => {
    const grpcErr = toGrpcError(new Ec2Error("IncorrectInstanceState", "The instance 'i-1' is not in a state from which it can be started."));
    const err = toCliError(grpcErr, "StartInstances", "h:1", true) as ServiceError;
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.exitCode).toBe(ExitCode.service);
    expect(err.message).toBe(
      "An error occurred (IncorrectInstanceState) when calling the StartInstances operation: The instance 'i-1' is not in a state from which it can be started.",
    );
  });

  it("fall back to the gRPC status name without an EC2 code", () => {
    const err = toCliError({ code: status.UNIMPLEMENTED, details: "no such method", metadata: new Metadata() }, "RunInstances", "h:1", true);
    expect((err as ServiceError).message).toBe("An error occurred (UNIMPLEMENTED) when calling the RunInstances operation: no such method");
  });
});

describe("endpoint errors (exit 255)", () => {
  it("say the endpoint could not be reached", () => {
    const err = toCliError({ code: status.UNAVAILABLE, details: "ECONNREFUSED" }, "RunInstances", "127.0.0.1:1", false);
    expect(err).toBeInstanceOf(EndpointError);
    expect((err as EndpointError).message).toBe('Could not connect to the endpoint URL: "127.0.0.1:1"');
    expect((err as EndpointError).exitCode).toBe(ExitCode.general);
  });

  it("tell a silent endpoint from a slow answer", () => {
    expect((toCliError({ code: status.DEADLINE_EXCEEDED }, "X", "h:1", false) as Error).message).toMatch(/^Could not connect/);
    expect((toCliError({ code: status.DEADLINE_EXCEEDED }, "X", "h:1", true) as Error).message).toBe('Read timeout on endpoint URL: "h:1"');
  });

  it("leave other errors alone", () => {
    const boom = new Error("boom");
    expect(toCliError(boom, "X", "h:1", true)).toBe(boom);
  });
});

describe("operationName", () => {
  it("is the RPC's method name", () => {
    expect(operationName({ path: "/cirrus.compute.v1.Compute/RunInstances" })).toBe("RunInstances");
  });
});
