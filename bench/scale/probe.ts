// The heartbeat probe for bench/scale, a child process of its own so that
// nothing else in it delays its calls: a host (capacity 0, so nothing is
// placed on it) registered through HostControl that sends a heartbeat every
// CIRRUS_PROBE_MS and records each round trip. The parent takes the samples
// gathered since its last request over IPC.
import { readFileSync } from "node:fs";
import { agentChannelOptions, bearerMetadata, callUnary, clusterChannelCredentials, createCsr, generateKey } from "@cirrus/common";
import { agent } from "@cirrus/proto";

const env = process.env;
const everyMs = Number(env.CIRRUS_PROBE_MS);
let samples: number[] = [];
let stopped = false;

process.on("message", (m: { take?: boolean; stop?: boolean }) => {
  if (m.take) {
    process.send!({ samples });
    samples = [];
  }
  if (m.stop) stopped = true;
});

// Registered over TLS as an agent is, then heartbeating with the certificate it was given.
const caPem = readFileSync(env.CIRRUS_CONTROL_CA!, "utf8");
const key = await generateKey();
const enrol = new agent.HostControlClient(env.CIRRUS_CONTROL_ENDPOINT!, clusterChannelCredentials(caPem), agentChannelOptions);
const reg = await callUnary(enrol, enrol.registerHost, agent.RegisterHostRequest.fromPartial({
  hostName: "scale-probe", availabilityZone: "lab-1a", vcpus: 0, memoryMib: 0, diskGib: 0,
  hypervisor: "fake", endpoint: "127.0.0.1:9", enrolmentToken: env.CIRRUS_ENROLMENT_TOKEN, csrPem: createCsr(key),
}), undefined, 10_000);
enrol.close();
const client = new agent.HostControlClient(env.CIRRUS_CONTROL_ENDPOINT!, clusterChannelCredentials(caPem, { certPem: reg.certificatePem, keyPem: key.privateKeyPem }), agentChannelOptions);
const md = bearerMetadata(reg.hostSecret, reg.hostId);
let applied = 0;
process.send!({ started: true });
while (!stopped) {
  const t0 = performance.now();
  try {
    const res = await callUnary(client, client.heartbeat, agent.HeartbeatRequest.fromPartial({ hostId: reg.hostId, appliedRevision: applied }), md, 30_000);
    if (res.state) applied = res.state.revision;
    samples.push(performance.now() - t0);
  } catch (err) {
    console.error(`probe heartbeat failed: ${String(err)}`);
  }
  await new Promise((r) => setTimeout(r, everyMs));
}
client.close();
process.exit(0);
