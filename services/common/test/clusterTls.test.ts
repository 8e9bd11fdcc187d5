// The cluster's TLS over real gRPC channels on loopback: which clients get a
// call through, and what the server learns of them.
import { Server, status, type ServerUnaryCall, type sendUnaryData, type ServiceError } from "@grpc/grpc-js";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callUnary, clusterChannelCredentials, clusterServerCredentials, insecure, peerCommonName } from "../src/grpc.js";
import { CONTROL_PLANE_CN, createCa, issueCredential } from "../src/pki.js";

const ca = await createCa("test CA");
const server1 = await issueCredential(ca, "h-0123456789abcdef0", ["127.0.0.1"]);
const controlPlane = await issueCredential(ca, CONTROL_PLANE_CN, []);
const otherCa = await createCa("another CA");
const stranger = await issueCredential(otherCa, CONTROL_PLANE_CN, []);

async function serve(requireClientCert: boolean): Promise<{ server: Server; port: number; seen: Array<string | undefined> }> {
  const seen: Array<string | undefined> = [];
  const server = new Server();
  server.addService(agent.HostControlService, {
    getUserData: (call: ServerUnaryCall<agent.UserDataRequest, agent.UserData>, cb: sendUnaryData<agent.UserData>) => {
      seen.push(peerCommonName(call));
      cb(null, { userData: Buffer.from("ok") });
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", clusterServerCredentials(ca.certPem, server1, requireClientCert), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port, seen };
}

const ask = (port: number, creds: ReturnType<typeof insecure>) => {
  const client = new agent.HostControlClient(`127.0.0.1:${port}`, creds);
  return callUnary(client, client.getUserData, { instanceId: "i-0123456789abcdef0" }, undefined, 3000).finally(() => client.close());
};

describe("cluster TLS", () => {
  let optional: Awaited<ReturnType<typeof serve>>;
  let required: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    optional = await serve(false);
    required = await serve(true);
  });
  afterAll(() => {
    optional.server.forceShutdown();
    required.server.forceShutdown();
  });

  it("with the client certificate optional: a client without one is served and unnamed, one with the CA's is named, plaintext is refused", async () => {
    await ask(optional.port, clusterChannelCredentials(ca.certPem));
    await ask(optional.port, clusterChannelCredentials(ca.certPem, controlPlane));
    expect(optional.seen).toEqual([undefined, CONTROL_PLANE_CN]);
    await expect(ask(optional.port, insecure())).rejects.toMatchObject({ code: status.UNAVAILABLE });
  });

  it("with the client certificate required: only a certificate from the cluster CA gets in", async () => {
    await ask(required.port, clusterChannelCredentials(ca.certPem, controlPlane));
    expect(required.seen).toEqual([CONTROL_PLANE_CN]);
    for (const creds of [clusterChannelCredentials(ca.certPem), clusterChannelCredentials(ca.certPem, stranger), insecure()]) {
      const err = (await ask(required.port, creds).then(() => undefined, (e: ServiceError) => e))!;
      expect(err?.code).toBe(status.UNAVAILABLE);
    }
    expect(required.seen).toHaveLength(1);
  });

  it("a server whose certificate is not from the cluster CA, or names another host, is refused by the client", async () => {
    await expect(ask(optional.port, clusterChannelCredentials(otherCa.certPem, controlPlane))).rejects.toMatchObject({ code: status.UNAVAILABLE });
  });
});
