// runAgent end to end with the fake driver against an in-process HostControl
// server: enrolment, persisted identity, retry while the control plane is
// down, heartbeats, reconcile of orphans, re-registration, shutdown.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { bearerFrom, bearerMetadata, callUnary, csrPublicKey, issueCertificate, peerCommonName } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterEach, describe, expect, it } from "vitest";
import { runAgent } from "../src/agent.js";
import { loadConfig, type AgentConfig } from "../src/config.js";
import { RegistrationRejected } from "../src/control.js";
import { A, B, eventually, freePort, quietLogger, testPki, testSpec } from "./helpers.js";

const { PowerState } = agent;
const TOKEN = "enrol-token";
const HOST_ID = "h-0123456789abcdef0";
const SECRET = "issued-host-secret";
const PKI = await testPki();

/** A minimal HostControl that records what agents send. */
class FakeControl {
  registrations: agent.RegisterHostRequest[] = [];
  heartbeats: agent.HeartbeatRequest[] = [];
  /** What the control plane wants on the host; sent when the agent's revision is behind. */
  desired: agent.HostState = { revision: 1, instances: [], network: undefined };
  /** Instances the control plane says were terminated on the host; every other one it asks the agent to keep. */
  terminated = new Set<string>();
  private server = new Server();

  async listen(port: number): Promise<void> {
    this.server.addService(agent.HostControlService, {
      registerHost: (call: ServerUnaryCall<agent.RegisterHostRequest, agent.RegisterHostResponse>, cb: sendUnaryData<agent.RegisterHostResponse>) => {
        this.registrations.push(call.request);
        const ok = call.request.enrolmentToken === TOKEN || call.request.hostSecret === SECRET;
        if (!ok) return cb({ code: status.UNAUTHENTICATED, details: "AuthFailure: bad credentials" } as ServiceError);
        cb(null, { hostId: HOST_ID, hostSecret: SECRET, certificatePem: issueCertificate(PKI.ca, csrPublicKey(call.request.csrPem), HOST_ID, ["127.0.0.1"]) });
      },
      heartbeat: (call: ServerUnaryCall<agent.HeartbeatRequest, agent.HeartbeatResponse>, cb: sendUnaryData<agent.HeartbeatResponse>) => {
        if (bearerFrom(call.metadata) !== SECRET || peerCommonName(call) !== HOST_ID) return cb({ code: status.UNAUTHENTICATED, details: "bad secret or certificate" } as ServiceError);
        this.heartbeats.push(call.request);
        cb(null, { state: call.request.appliedRevision < this.desired.revision ? this.desired : undefined });
      },
      getUserData: (_call: ServerUnaryCall<agent.UserDataRequest, agent.UserData>, cb: sendUnaryData<agent.UserData>) => cb(null, { userData: Buffer.alloc(0) }),
      classifyInstances: (call: ServerUnaryCall<agent.ClassifyInstancesRequest, agent.ClassifyInstancesResponse>, cb: sendUnaryData<agent.ClassifyInstancesResponse>) => {
        const { InstanceVerdict: V } = agent;
        cb(null, { instances: call.request.instanceIds.map((instanceId) => ({ instanceId, verdict: this.terminated.has(instanceId) ? V.INSTANCE_VERDICT_TERMINATED : V.INSTANCE_VERDICT_KEEP })) });
      },
    });
    await new Promise<void>((resolve, reject) => this.server.bindAsync(`127.0.0.1:${port}`, PKI.serverCredentials(), (err) => (err ? reject(err) : resolve())));
  }

  lastReport(): agent.InstanceStatus[] | undefined {
    return this.heartbeats.at(-1)?.instances;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

describe("runAgent with the fake driver", () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(env: Record<string, string>) {
    const stateDir = mkdtempSync(join(tmpdir(), "cirrus-agent-state-"));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const [controlPort, agentPort] = [await freePort(), await freePort()];
    const config: AgentConfig = loadConfig({
      CIRRUS_DRIVER: "fake",
      CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${controlPort}`,
      CIRRUS_AGENT_LISTEN: `127.0.0.1:${agentPort}`,
      CIRRUS_STATE_DIR: stateDir,
      CIRRUS_CONTROL_CA: PKI.caFile,
      CIRRUS_HEARTBEAT_MS: "100",
      CIRRUS_ORPHAN_GRACE_MS: "500",
      CIRRUS_CAPACITY_VCPUS: "8",
      ...env,
    });
    return { config, controlPort, agentPort, stateDir };
  }

  function start(config: AgentConfig) {
    const stop = new AbortController();
    const done = runAgent(config, quietLogger(), stop.signal);
    cleanups.push(async () => {
      stop.abort();
      await done.catch(() => undefined);
    });
    return { stop, done };
  }

  it("enrols once the control plane comes up, heartbeats, reconciles orphans, re-registers with its secret", async () => {
    const { config, controlPort, agentPort, stateDir } = await setup({ CIRRUS_ENROLMENT_TOKEN: TOKEN });
    const first = start(config);
    // The control plane is down for a while: the agent keeps retrying instead of crashing.
    await new Promise((r) => setTimeout(r, 800));
    const control = new FakeControl();
    cleanups.push(() => control.stop());
    await control.listen(controlPort);
    await eventually(() => control.registrations.length > 0, 35_000, "registration");
    expect(control.registrations[0]).toMatchObject({ enrolmentToken: TOKEN, hostSecret: "", hypervisor: "fake", vcpus: 8, availabilityZone: "lab-1a", endpoint: `127.0.0.1:${agentPort}` });

    const stored = join(stateDir, "host.json");
    await eventually(() => control.heartbeats.length > 0, 5000, "first heartbeat");
    expect(JSON.parse(readFileSync(stored, "utf8"))).toEqual({ hostId: HOST_ID, hostSecret: SECRET });
    expect(statSync(stored).mode & 0o777).toBe(0o600);
    // Its certificate, from the CA for its host id, and the key it made for it: root's alone.
    for (const f of ["agent-key.pem", "agent-cert.pem"]) expect(statSync(join(stateDir, f)).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(readFileSync(join(stateDir, "agent-cert.pem"))).subject).toBe(`CN=${HOST_ID}`);
    expect(control.heartbeats[0]!.hostId).toBe(HOST_ID);

    // The worker's view: the agent serves with the issued secret.
    const client = new agent.HostAgentClient(`127.0.0.1:${agentPort}`, PKI.channelCredentials());
    cleanups.push(() => client.close());
    const md = () => bearerMetadata(SECRET);
    control.desired = { revision: 2, instances: [testSpec(A)], network: undefined };
    control.terminated.add(B);
    await callUnary(client, client.createInstance, { spec: testSpec(A) }, md(), 5000);
    await callUnary(client, client.createInstance, { spec: testSpec(B) }, md(), 5000);
    await callUnary(client, client.stopInstance, { instanceId: A, force: true }, md(), 5000);

    // Heartbeats report the hypervisor's truth; B is unwanted, terminated by the control plane's word, and goes after the grace period.
    await eventually(() => JSON.stringify(control.lastReport()) === JSON.stringify([{ instanceId: A, powerState: PowerState.POWER_STATE_SHUT_OFF }]), 10_000, "B reconciled away");
    const sawB = control.heartbeats.some((h) => h.instances.some((i) => i.instanceId === B));
    expect(sawB).toBe(true);

    first.stop.abort();
    await first.done;
    await expect(callUnary(client, client.startInstance, { instanceId: A }, md(), 1000)).rejects.toMatchObject({ code: status.UNAVAILABLE });

    // A restart re-registers with the stored secret, no token needed.
    const second = start({ ...config, enrolmentToken: undefined });
    await eventually(() => control.registrations.length === 2, 10_000, "re-registration");
    expect(control.registrations[1]).toMatchObject({ enrolmentToken: "", hostSecret: SECRET });
    second.stop.abort();
    await second.done;
  }, 60_000);

  it("fails to start, with RegistrationRejected, when the control plane refuses the token", async () => {
    const { config, controlPort } = await setup({ CIRRUS_ENROLMENT_TOKEN: "wrong-token" });
    const control = new FakeControl();
    cleanups.push(() => control.stop());
    await control.listen(controlPort);
    const { done } = start(config);
    await expect(done).rejects.toBeInstanceOf(RegistrationRejected);
  }, 30_000);

  it("fails to start without a stored identity or an enrolment token", async () => {
    const { config } = await setup({});
    await expect(start(config).done).rejects.toThrow(/no enrolment token/);
  });
});
