// gRPC adapter for HostControl (agents → control plane). Heartbeats are
// authenticated with the host id and secret in the call metadata.
import { bearerFrom, Ec2Error, unaryHandler } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import type { DomainContext } from "../domain/context.js";
import { authenticateHost, heartbeat, registerHost } from "../domain/hosts.js";

export function hostControlHandlers(ctx: DomainContext): agent.HostControlServer {
  const log = ctx.log.child({ rpc: "HostControl" });
  const onError = (err: unknown) => {
    if (err instanceof Ec2Error && err.code !== "InternalError") log.warn({ code: err.code }, err.message);
    else log.error({ err }, "host control request failed");
  };
  return {
    registerHost: unaryHandler((req: agent.RegisterHostRequest) => registerHost(ctx, req), onError),
    heartbeat: unaryHandler(async (req: agent.HeartbeatRequest, call) => {
      const hostId = call.metadata.get("x-cirrus-host-id")[0];
      if (hostId !== req.hostId) throw new Ec2Error("AuthFailure", "Host id mismatch");
      await authenticateHost(ctx, req.hostId, bearerFrom(call.metadata));
      return heartbeat(ctx, req);
    }, onError),
  };
}
