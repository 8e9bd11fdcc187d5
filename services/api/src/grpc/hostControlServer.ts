// gRPC adapter for HostControl (agents → control plane). Every call but
// RegisterHost is authenticated with the host id and secret in the call
// metadata.
import { bearerFrom } from "@cirrus/common";
import { authenticateHost, Ec2Error, heartbeat, registerHost, userData, type HostControlCore } from "@cirrus/core";
import type { agent } from "@cirrus/proto";
import { unaryHandler } from "./handler.js";

export function hostControlHandlers(core: HostControlCore, enrolmentToken: string): agent.HostControlServer {
  const log = core.log.child({ rpc: "HostControl" });
  const onError = (err: unknown) => {
    if (err instanceof Ec2Error && err.code !== "InternalError") log.warn({ code: err.code }, err.message);
    else log.error({ err }, "host control request failed");
  };
  return {
    registerHost: unaryHandler((req: agent.RegisterHostRequest) => registerHost(core, enrolmentToken, req), onError),
    heartbeat: unaryHandler(async (req: agent.HeartbeatRequest, call) => {
      const hostId = call.metadata.get("x-cirrus-host-id")[0];
      if (hostId !== req.hostId) throw new Ec2Error("AuthFailure", "Host id mismatch");
      await authenticateHost(core, req.hostId, bearerFrom(call.metadata));
      return heartbeat(core, req);
    }, onError),
    getUserData: unaryHandler(async (req: agent.UserDataRequest, call) => {
      const hostId = call.metadata.get("x-cirrus-host-id")[0];
      if (typeof hostId !== "string") throw new Ec2Error("AuthFailure", "Host id missing");
      await authenticateHost(core, hostId, bearerFrom(call.metadata));
      return userData(core, hostId, req.instanceId);
    }, onError),
  };
}
