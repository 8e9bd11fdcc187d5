// gRPC adapter for HostControl (agents → control plane). Every call but
// RegisterHost is authenticated with the host id and secret in the call
// metadata.
import { bearerFrom, peerCommonName, type Credential } from "@cirrus/common";
import { authenticateHost, classifyInstances, Ec2Error, heartbeat, registerHost, userData, type HostControlCore } from "@cirrus/core";
import type { Metadata } from "@grpc/grpc-js";
import type { agent } from "@cirrus/proto";
import { unaryHandler } from "./handler.js";

export function hostControlHandlers(core: HostControlCore & { ca: Credential }, enrolmentToken: string): agent.HostControlServer {
  const log = core.log.child({ rpc: "HostControl" });
  const onError = (err: unknown) => {
    if (err instanceof Ec2Error && err.code !== "InternalError") log.warn({ code: err.code }, err.message);
    else log.error({ err }, "host control request failed");
  };
  /** The authenticated calling host's id: its TLS client certificate names it, and its secret matches. */
  const caller = async (call: { metadata: Metadata } & Parameters<typeof peerCommonName>[0]): Promise<string> => {
    const hostId = call.metadata.get("x-cirrus-host-id")[0];
    if (typeof hostId !== "string") throw new Ec2Error("AuthFailure", "Host id missing");
    if (peerCommonName(call) !== hostId) throw new Ec2Error("AuthFailure", "Host authentication failed: no client certificate for this host");
    await authenticateHost(core, hostId, bearerFrom(call.metadata));
    return hostId;
  };
  return {
    registerHost: unaryHandler((req: agent.RegisterHostRequest) => registerHost(core, enrolmentToken, req), onError),
    heartbeat: unaryHandler(async (req: agent.HeartbeatRequest, call) => {
      if ((await caller(call)) !== req.hostId) throw new Ec2Error("AuthFailure", "Host id mismatch");
      return heartbeat(core, req);
    }, onError),
    getUserData: unaryHandler(async (req: agent.UserDataRequest, call) => userData(core, await caller(call), req.instanceId), onError),
    classifyInstances: unaryHandler(async (req: agent.ClassifyInstancesRequest, call) => classifyInstances(core, await caller(call), req.instanceIds), onError),
  };
}
