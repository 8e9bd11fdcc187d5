// gRPC adapter for HostControl (agents → control plane). Every call but
// RegisterHost is authenticated with the host id and secret in the call
// metadata.
import { bearerFrom } from "@cirrus/common";
import { authenticateHost, classifyInstances, Ec2Error, heartbeat, registerHost, userData, type HostControlCore } from "@cirrus/core";
import type { Metadata } from "@grpc/grpc-js";
import type { agent } from "@cirrus/proto";
import { unaryHandler } from "./handler.js";

export function hostControlHandlers(core: HostControlCore, enrolmentToken: string): agent.HostControlServer {
  const log = core.log.child({ rpc: "HostControl" });
  const onError = (err: unknown) => {
    if (err instanceof Ec2Error && err.code !== "InternalError") log.warn({ code: err.code }, err.message);
    else log.error({ err }, "host control request failed");
  };
  /** The authenticated calling host's id. */
  const caller = async (metadata: Metadata): Promise<string> => {
    const hostId = metadata.get("x-cirrus-host-id")[0];
    if (typeof hostId !== "string") throw new Ec2Error("AuthFailure", "Host id missing");
    await authenticateHost(core, hostId, bearerFrom(metadata));
    return hostId;
  };
  return {
    registerHost: unaryHandler((req: agent.RegisterHostRequest) => registerHost(core, enrolmentToken, req), onError),
    heartbeat: unaryHandler(async (req: agent.HeartbeatRequest, call) => {
      if ((await caller(call.metadata)) !== req.hostId) throw new Ec2Error("AuthFailure", "Host id mismatch");
      return heartbeat(core, req);
    }, onError),
    getUserData: unaryHandler(async (req: agent.UserDataRequest, call) => userData(core, await caller(call.metadata), req.instanceId), onError),
    classifyInstances: unaryHandler(async (req: agent.ClassifyInstancesRequest, call) => classifyInstances(core, await caller(call.metadata), req.instanceIds), onError),
  };
}
