// Bad input gets EC2's error code, writes nothing and leaves every process up.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { connect, createServer as createNetServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, status } from "@grpc/grpc-js";
import { bearerMetadata, callUnary, clusterChannelCredentials, CONTROL_PLANE_CN, createCsr, generateKey } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { Stack } from "../src/stack.js";

const stack = new Stack();
let imageId = "";
let terminatedId = "";
let hostId = "";
let agentEndpoint = "";

async function rowCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of ["instances", "images", "tags", "run_requests", "hosts", "security_group_rules"]) {
    out[t] = Number((await stack.pool.query(`SELECT count(*) FROM ${t}`)).rows[0].count);
  }
  out.usedVcpus = Number((await stack.pool.query("SELECT coalesce(sum(used_vcpus), 0) AS n FROM hosts")).rows[0].n);
  return out;
}

beforeAll(async () => {
  await stack.start();
  ({ hostId, endpoint: agentEndpoint } = await stack.addAgent({ name: "fake1", driver: "fake", capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } }));
  imageId = await stack.registerTestImage();
  const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
  terminatedId = res.Instances[0].InstanceId;
  await stack.waitForState([terminatedId], "running");
  await stack.call("terminateInstances", { InstanceIds: [terminatedId] });
  await stack.waitForState([terminatedId], "terminated");
  groupId = (await stack.call("describeSecurityGroups", {})).SecurityGroups[0].GroupId;
  otherDisk = `${stack.workDir}/instances/fake1/${stack.domainPrefix}i-0123456789abcdef0.qcow2`;
  execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", otherDisk, "1G"]);
  evilDir = `${IMAGES}/cirrus-t-${stack.runId}`;
  mkdirSync(evilDir, { recursive: true });
  symlinkSync(`${stack.workDir}/agent-state/fake1/host.json`, `${evilDir}/rootfs.qcow2`);
});
afterAll(async () => {
  if (evilDir) rmSync(evilDir, { recursive: true, force: true });
  await stack.stop();
});

const IMAGES = "/var/lib/cirrus/images";
/** A real qcow2 disk in an agent's instances directory, and an image directory holding a symlink to the agent's secret. */
let otherDisk = "";
/** The default security group. */
let groupId = "";
let evilDir = "";

const run = (over: Record<string, unknown>) => ({ ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, ...over });
const longTag = { ResourceType: "instance", Tags: [{ Key: "k".repeat(129), Value: "v" }] };
const longValue = { ResourceType: "instance", Tags: [{ Key: "Name", Value: "v".repeat(257) }] };

const cases: Array<[string, string, () => unknown, string]> = [
  ["unknown AMI", "runInstances", () => run({ ImageId: "ami-0123456789abcdef0" }), "InvalidAMIID.NotFound"],
  ["malformed AMI id", "runInstances", () => run({ ImageId: "ami-xyz" }), "InvalidAMIID.Malformed"],
  ["unknown instance type", "runInstances", () => run({ InstanceType: "t9.huge" }), "InvalidParameterValue"],
  ["MinCount > MaxCount", "runInstances", () => run({ MinCount: 3, MaxCount: 2 }), "InvalidParameterValue"],
  ["MaxCount 100001", "runInstances", () => run({ MaxCount: 100001 }), "InvalidParameterValue"],
  ["MinCount 0", "runInstances", () => run({ MinCount: 0 }), "InvalidParameterValue"],
  ["missing MaxCount", "runInstances", () => run({ MaxCount: undefined }), "MissingParameter"],
  ["tag key over 128", "runInstances", () => run({ TagSpecifications: [longTag] }), "InvalidParameterValue"],
  ["tag value over 256", "runInstances", () => run({ TagSpecifications: [longValue] }), "InvalidParameterValue"],
  ["51 tags", "runInstances", () => run({ TagSpecifications: [{ ResourceType: "instance", Tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: "v" })) }] }), "TagLimitExceeded"],
  ["unknown zone", "runInstances", () => run({ Placement: { AvailabilityZone: "nowhere-1z" } }), "InvalidParameterValue"],
  ["bad user data", "runInstances", () => run({ UserData: "not base64!" }), "InvalidParameterValue"],
  ["unknown key pair", "runInstances", () => run({ KeyName: "no-such-key" }), "InvalidKeyPair.NotFound"],
  ["unknown subnet", "runInstances", () => run({ SubnetId: "subnet-0123456789abcdef0" }), "InvalidSubnetID.NotFound"],
  ["malformed subnet id", "runInstances", () => run({ SubnetId: "subnet-x" }), "InvalidSubnetID.Malformed"],
  ["unknown security group", "runInstances", () => run({ SecurityGroupIds: ["sg-0123456789abcdef0"] }), "InvalidGroup.NotFound"],
  ["malformed instance id", "describeInstances", () => ({ InstanceIds: ["i-123"] }), "InvalidInstanceID.Malformed"],
  ["unknown instance id", "stopInstances", () => ({ InstanceIds: ["i-0123456789abcdef0"] }), "InvalidInstanceID.NotFound"],
  ["shell in an id", "terminateInstances", () => ({ InstanceIds: ["i-$(reboot)"] }), "InvalidInstanceID.Malformed"],
  ["stopping a terminated instance", "stopInstances", () => ({ InstanceIds: [terminatedId] }), "IncorrectInstanceState"],
  ["rebooting a terminated instance", "rebootInstances", () => ({ InstanceIds: [terminatedId] }), "IncorrectInstanceState"],
  ["unknown filter", "describeInstances", () => ({ Filters: [{ Name: "bogus", Values: ["x"] }] }), "InvalidParameterValue"],
  ["bad NextToken", "describeInstances", () => ({ NextToken: "garbage" }), "InvalidNextToken"],
  ["MaxResults out of range", "describeInstances", () => ({ MaxResults: 2 }), "InvalidParameterValue"],
  ["relative image path", "registerImage", () => ({ Name: "bad-path", ImageLocation: "../etc/passwd" }), "InvalidParameterValue"],
  ["image path with shell", "registerImage", () => ({ Name: "bad-path2", ImageLocation: "/x;rm -rf /" }), "InvalidParameterValue"],
  ["duplicate image name", "registerImage", () => ({ Name: `test-ami-${stack.runId}`, ImageLocation: `${IMAGES}/x.qcow2` }), "InvalidAMIName.Duplicate"],
  // Image files come only from the operator's image directories (CIRRUS_IMAGE_DIRS, default /var/lib/cirrus/images), symlinks followed.
  ["/etc/shadow as an image", "registerImage", () => ({ Name: "shadow", ImageLocation: "/etc/shadow" }), "InvalidParameterValue"],
  ["the agent's secret as an image", "registerImage", () => ({ Name: "secret", ImageLocation: `${stack.workDir}/agent-state/fake1/host.json` }), "InvalidParameterValue"],
  ["another instance's disk as an image", "registerImage", () => ({ Name: "disk", ImageLocation: otherDisk }), "InvalidParameterValue"],
  ["a symlink out of the image directory", "registerImage", () => ({ Name: "link", ImageLocation: `${evilDir}/rootfs.qcow2` }), "InvalidParameterValue"],
  [".. segments out of the image directory", "registerImage", () => ({ Name: "dots", ImageLocation: `${IMAGES}/../../../etc/shadow` }), "InvalidParameterValue"],
  ["a kernel outside the image directories", "registerImage", () => ({ Name: "kernel", ImageLocation: `${IMAGES}/x.qcow2`, KernelLocation: "/boot/../etc/shadow" }), "InvalidParameterValue"],
  ["an image directory's name as a mere prefix", "registerImage", () => ({ Name: "prefix", ImageLocation: `${IMAGES}-evil/rootfs.qcow2` }), "InvalidParameterValue"],
  // A rule the agents could not enforce is refused by the API (one definition, common/securityRules.ts).
  ["ICMP code without a type", "authorizeSecurityGroupIngress", () => ({ GroupId: groupId, IpPermissions: [{ IpProtocol: "icmp", FromPort: -1, ToPort: 5, IpRanges: [{ CidrIp: "10.0.0.0/8" }] }] }), "InvalidParameterValue"],
  ["ICMP type 256", "authorizeSecurityGroupEgress", () => ({ GroupId: groupId, IpPermissions: [{ IpProtocol: "icmp", FromPort: 256, ToPort: -1, IpRanges: [{ CidrIp: "10.0.0.0/8" }] }] }), "InvalidParameterValue"],
  ["deregister unknown image", "deregisterImage", () => ({ ImageId: "ami-0123456789abcdef0" }), "InvalidAMIID.NotFound"],
  ["console of unknown instance", "getConsoleOutput", () => ({ InstanceId: "i-0123456789abcdef0" }), "InvalidInstanceID.NotFound"],
];

describe("bad input", () => {
  it.each(cases)("%s → error, nothing written", async (_name, method, request, code) => {
    const before = await rowCounts();
    const err = await stack.call(method as never, request()).then(() => undefined, (e: { details?: string; metadata?: { get(k: string): unknown[] } }) => e);
    expect(err, "the call must fail").toBeDefined();
    expect(err!.metadata!.get("x-ec2-error-code")[0]).toBe(code);
    expect(err!.details).toMatch(new RegExp(`^${code.replace(".", "\\.")}: .+`));
    expect(await rowCounts()).toEqual(before);
    expect(stack.api.alive && stack.workers.every((w) => w.alive) && [...stack.agents.values()].every((a) => a.alive)).toBe(true);
  });

  it("a reused ClientToken with other parameters is refused", async () => {
    await stack.call("runInstances", run({ ClientToken: "same-token" }));
    const before = await rowCounts();
    await expect(stack.call("runInstances", run({ ClientToken: "same-token", InstanceType: "t2.micro" }))).rejects.toMatchObject({ details: expect.stringMatching(/^IdempotentParameterMismatch: /) });
    expect(await rowCounts()).toEqual(before);
  });
});

describe("the agent boundary is authenticated both ways, over TLS", () => {
  const caPem = () => readFileSync(stack.caFile, "utf8");
  let csrPem = "";
  let otherCsrPem = "";
  beforeAll(async () => {
    csrPem = createCsr(await generateKey());
    otherCsrPem = createCsr(await generateKey());
  });

  it("HostControl refuses plaintext, a wrong enrolment token, a wrong host secret, and a caller without that host's certificate", async () => {
    const plain = new agent.HostControlClient(`127.0.0.1:${stack.controlPort}`, credentials.createInsecure());
    await expect(callUnary(plain, plain.heartbeat, agent.HeartbeatRequest.fromPartial({ hostId }), undefined, 3000)).rejects.toMatchObject({ code: status.UNAVAILABLE });
    plain.close();
    const control = new agent.HostControlClient(`127.0.0.1:${stack.controlPort}`, clusterChannelCredentials(caPem()));
    const before = await rowCounts();
    await expect(callUnary(control, control.registerHost, agent.RegisterHostRequest.fromPartial({
      hostName: "intruder", availabilityZone: "lab-1a", hypervisor: "fake", endpoint: "127.0.0.1:1", vcpus: 1000, memoryMib: 1, diskGib: 1, enrolmentToken: "not-the-token", csrPem,
    }))).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const { rows: [host] } = await stack.pool.query("SELECT secret FROM hosts WHERE id = $1", [hostId]);
    const beat = (c: agent.HostControlClient, secret: string) => callUnary(c, c.heartbeat, agent.HeartbeatRequest.fromPartial({ hostId }), bearerMetadata(secret, hostId));
    // The right secret without the host's certificate, and with another host's, is refused too.
    await expect(beat(control, host.secret)).rejects.toMatchObject({ code: status.UNAUTHENTICATED, details: expect.stringContaining("certificate") });
    const otherHost = new agent.HostControlClient(`127.0.0.1:${stack.controlPort}`, await stack.clusterCredentials("h-00000000000000001"));
    await expect(beat(otherHost, host.secret)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const asHost = new agent.HostControlClient(`127.0.0.1:${stack.controlPort}`, await stack.clusterCredentials(hostId));
    await expect(beat(asHost, "wrong-secret")).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    expect(await beat(asHost, host.secret)).toBeDefined();
    expect(await rowCounts()).toEqual(before);
    for (const c of [control, otherHost, asHost]) c.close();
  });

  it("the enrolment token enrols new host names only: an enrolled host is re-registered with its own secret, never taken over", async () => {
    const control = new agent.HostControlClient(`127.0.0.1:${stack.controlPort}`, clusterChannelCredentials(caPem()));
    const { rows: [host] } = await stack.pool.query("SELECT name, secret, endpoint FROM hosts WHERE id = $1", [hostId]);
    const register = (hostName: string, creds: { enrolmentToken?: string; hostSecret?: string }) => callUnary(control, control.registerHost, agent.RegisterHostRequest.fromPartial({
      hostName, availabilityZone: "lab-1a", hypervisor: "fake", endpoint: "127.0.0.1:1", vcpus: 0, memoryMib: 0, diskGib: 0, csrPem, ...creds,
    }));
    await expect(register(host.name, { enrolmentToken: stack.enrolmentToken })).rejects.toMatchObject({ code: status.UNAUTHENTICATED, details: expect.stringContaining("already enrolled") });
    await expect(register(host.name, { enrolmentToken: stack.enrolmentToken, hostSecret: "wrong-secret" })).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const { rows: [after] } = await stack.pool.query("SELECT name, secret, endpoint FROM hosts WHERE id = $1", [hostId]);
    expect(after).toEqual(host);
    // A new name enrols with the token; it re-registers with its secret (or, its answer lost, with the token and the same key).
    const newcomer = `newcomer-${stack.runId}`;
    const first = await register(newcomer, { enrolmentToken: stack.enrolmentToken });
    expect(new X509Certificate(first.certificatePem).subject).toBe(`CN=${first.hostId}`);
    // Its answer lost, the agent retries with the token and the same key: the same identity, nothing new.
    expect(await register(newcomer, { enrolmentToken: stack.enrolmentToken })).toMatchObject({ hostId: first.hostId, hostSecret: first.hostSecret });
    // The token with another key is somebody else: refused.
    await expect(register(newcomer, { enrolmentToken: stack.enrolmentToken, csrPem: otherCsrPem } as never)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    expect(await register(newcomer, { hostSecret: first.hostSecret })).toMatchObject({ hostId: first.hostId, hostSecret: first.hostSecret });
    // A request without a valid certificate request is refused before anything is written.
    await expect(register(`nocsr-${stack.runId}`, { enrolmentToken: stack.enrolmentToken, csrPem: "garbage" } as never)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    control.close();
  });

  it("HostAgent takes calls only from the control plane's certificate, with the host secret", async () => {
    const ref = agent.InstanceRef.fromPartial({ instanceId: terminatedId });
    const plain = new agent.HostAgentClient(agentEndpoint, credentials.createInsecure());
    await expect(callUnary(plain, plain.destroyInstance, ref, bearerMetadata("x"), 3000)).rejects.toMatchObject({ code: status.UNAVAILABLE });
    plain.close();
    const anotherAgent = new agent.HostAgentClient(agentEndpoint, await stack.clusterCredentials("h-00000000000000001"));
    await expect(callUnary(anotherAgent, anotherAgent.destroyInstance, ref, bearerMetadata("x"))).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    anotherAgent.close();
    const client = new agent.HostAgentClient(agentEndpoint, await stack.clusterCredentials(CONTROL_PLANE_CN));
    await expect(callUnary(client, client.destroyInstance, ref)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(callUnary(client, client.destroyInstance, ref, bearerMetadata("wrong-secret"))).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    client.close();
  });

  it("no secret crosses the network in clear: the bytes between an enrolling agent and HostControl hold neither the token nor the host secret", async () => {
    const seen: Buffer[] = [];
    const proxy = createNetServer((inbound) => {
      const outbound = connect(stack.controlPort, "127.0.0.1");
      inbound.on("data", (d: Buffer) => seen.push(d));
      outbound.on("data", (d: Buffer) => seen.push(d));
      inbound.pipe(outbound).pipe(inbound);
      inbound.on("error", () => outbound.destroy());
      outbound.on("error", () => inbound.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const port = (proxy.address() as { port: number }).port;
    try {
      const { hostId: sniffed } = await stack.addAgent({ name: "sniffed", driver: "fake", capacity: { vcpus: 1, memoryMib: 64, diskGib: 1 }, extraEnv: { CIRRUS_CONTROL_ENDPOINT: `127.0.0.1:${port}` } });
      const { rows: [h] } = await stack.pool.query("SELECT secret FROM hosts WHERE id = $1", [sniffed]);
      const bytes = Buffer.concat(seen);
      expect(bytes.length).toBeGreaterThan(1000);
      // A TLS handshake record, where plaintext HTTP/2 would open with its "PRI * HTTP/2.0" preface.
      expect(seen[0]![0]).toBe(0x16);
      expect(bytes.includes(Buffer.from("PRI * HTTP/2.0"))).toBe(false);
      for (const secret of [stack.enrolmentToken, h.secret as string]) expect(bytes.includes(Buffer.from(secret))).toBe(false);
    } finally {
      proxy.close();
    }
  });
});
