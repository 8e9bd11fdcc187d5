// Security groups, elastic IPs, user-data and the metadata service, proven
// with real packets: two instances booted from the test AMI under libvirt,
// and a client in a network namespace this test creates. Every destination
// is checked with `ip route get` before sending (see test/src/netns.ts).
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientNamespace } from "../src/netns.js";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
const client = new ClientNamespace(stack.runId, stack.vpcOctet, [stack.defaultVpcCidr, stack.addressPool]);
let web = "";
let app = "";
let a = { id: "", ip: "" };
let b = { id: "", ip: "" };
let publicKey = "";

const userData = (target: string) => Buffer.from(`#!/bin/sh
echo META-SELF $(wget -q -O - http://169.254.169.254/latest/meta-data/instance-id)
echo META-KEY $(wget -q -O - http://169.254.169.254/latest/meta-data/public-keys/0/openssh-key)
for i in $(seq 1 240); do
  if timeout 2 wget -q -O /dev/null http://${target}/; then echo A2B-ok; else echo A2B-fail; fi
  sleep 1
done
`).toString("base64");

const reach = (ip: string, port = 80) => client.get(ip, port)?.trim();

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "net1", driver: "libvirt", capacity: { vcpus: 4, memoryMib: 4096, diskGib: 20 } });
  await stack.registerTestImage();
  client.create();
  ({ GroupId: web } = await stack.call("createSecurityGroup", { GroupName: "web", Description: "instance A" }));
  ({ GroupId: app } = await stack.call("createSecurityGroup", { GroupName: "app", Description: "instance B" }));
  const imageId = (await stack.call("describeImages", {})).Images[0].ImageId;
  await stack.call("createKeyPair", { KeyName: "e2e-key", KeyType: "ed25519" });
  publicKey = (await stack.call("describeKeyPairs", { KeyNames: ["e2e-key"], IncludePublicKey: true })).KeyPairs[0].PublicKey;
  const rb = (await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, SecurityGroupIds: [app] })).Instances[0];
  b = { id: rb.InstanceId, ip: rb.PrivateIpAddress };
  const ra = (await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, SecurityGroupIds: [web], KeyName: "e2e-key", UserData: userData(b.ip) })).Instances[0];
  a = { id: ra.InstanceId, ip: ra.PrivateIpAddress };
  await stack.waitForState([a.id, b.id], "running", 180_000);
  for (const i of [a, b]) {
    await waitUntil(`${i.id} network`, async () => (await stack.consoleText(i.id)).includes(`CIRRUS-NET instance-id=${i.id} ip=${i.ip}/`), 120_000, 1000);
  }
});

afterAll(async () => {
  client.destroy();
  await stack.stop();
});

describe("packets", () => {
  it("routes only through our own namespace and bridge", () => {
    client.assertRouted(a.ip);
    expect(execFileSync("ip", ["route", "get", a.ip], { encoding: "utf8" })).toMatch(/dev cb[0-9a-f]{13}/);
  });

  it("port 80 opens with an ingress rule and closes when it is revoked; 8080 never opens", async () => {
    expect(reach(a.ip)).toBeUndefined();
    const rule = { GroupId: web, IpProtocol: "tcp", FromPort: 80, ToPort: 80, CidrIp: `${client.clientIp}/32` };
    const t0 = Date.now();
    await stack.call("authorizeSecurityGroupIngress", rule);
    await waitUntil("port 80 to open", async () => reach(a.ip) === a.id, 10_000, 100);
    console.log(`ingress rule effective after ${Date.now() - t0} ms`);
    expect(reach(a.ip, 8080)).toBeUndefined();
    await stack.call("revokeSecurityGroupIngress", rule);
    await waitUntil("port 80 to close", async () => reach(a.ip, 80) === undefined, 10_000, 100);
    await stack.call("authorizeSecurityGroupIngress", rule);
    await waitUntil("port 80 to open again", async () => reach(a.ip) === a.id, 10_000, 100);
  });

  it("A reaches B through a rule naming A's group as the source", async () => {
    const okCount = async () => ((await stack.consoleText(a.id)).match(/A2B-ok/g) ?? []).length;
    await waitUntil("A to have tried B", async () => (await stack.consoleText(a.id)).includes("A2B-fail"), 60_000, 1000);
    expect(await okCount()).toBe(0);
    await stack.call("authorizeSecurityGroupIngress", { GroupId: app, IpPermissions: [{ IpProtocol: "tcp", FromPort: 80, ToPort: 80, IpRanges: [], UserIdGroupPairs: [{ GroupId: web }] }] });
    await waitUntil("A to reach B", async () => (await okCount()) > 0, 30_000, 1000);
    // The client is not in A's group: B stays closed to it.
    expect(reach(b.ip)).toBeUndefined();
  });

  it("is stateful: replies flow with no egress rule at all", async () => {
    await stack.call("revokeSecurityGroupEgress", { GroupId: web, IpProtocol: "-1", CidrIp: stack.defaultVpcCidr });
    await new Promise((r) => setTimeout(r, 1500));
    expect(reach(a.ip)).toBe(a.id);
  });

  it("an elastic IP reaches A, then B after re-association, then nothing", async () => {
    await stack.call("authorizeSecurityGroupIngress", { GroupId: app, IpProtocol: "tcp", FromPort: 80, ToPort: 80, CidrIp: `${client.clientIp}/32` });
    const { AllocationId, PublicIp } = await stack.call("allocateAddress", { Domain: "vpc" });
    await stack.call("associateAddress", { AllocationId, InstanceId: a.id });
    await waitUntil("EIP to reach A", async () => reach(PublicIp) === a.id, 10_000, 100);
    const { AssociationId } = await stack.call("associateAddress", { AllocationId, InstanceId: b.id, AllowReassociation: true });
    await waitUntil("EIP to reach B", async () => reach(PublicIp) === b.id, 10_000, 100);
    await stack.call("disassociateAddress", { AssociationId });
    await waitUntil("EIP to reach nothing", async () => reach(PublicIp) === undefined, 10_000, 100);
  });

  it("runs user-data and the metadata service answers each instance with its own identity", async () => {
    const consoleA = await stack.consoleText(a.id);
    expect(consoleA).toContain(`CIRRUS-USERDATA-BEGIN instance-id=${a.id}`);
    expect(consoleA).toContain(`META-SELF ${a.id}`);
    expect(consoleA).toContain(`META-KEY ${publicKey.trim()}`);
    expect(consoleA).toContain(`CIRRUS-METADATA instance-id=${a.id} metadata-instance-id=${a.id}`);
    expect(await stack.consoleText(b.id)).toContain(`CIRRUS-METADATA instance-id=${b.id} metadata-instance-id=${b.id}`);
  });

  it("rules flushed by hand are restored by the reconcile loop", async () => {
    const own = (table: string) => execFileSync("iptables-save", ["-t", table], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith(`:${stack.netPrefix}-`)).map((l) => l.split(" ")[0]!.slice(1));
    for (const table of ["filter", "nat"]) {
      const chains = own(table);
      expect(chains.length).toBeGreaterThan(0);
      for (const c of chains) execFileSync("iptables", ["-t", table, "-F", c]);
    }
    // Flushed chains accept everything: 8080 opens until the loop restores the rules.
    const ruleCount = (table: string) => own(table).reduce((n, c) => n + execFileSync("iptables", ["-t", table, "-S", c], { encoding: "utf8" }).trim().split("\n").length - 1, 0);
    await waitUntil("the rules to be restored", async () => ruleCount("filter") > 10 && ruleCount("nat") > 0, 30_000, 200);
    expect(reach(a.ip, 8080)).toBeUndefined();
    expect(reach(b.ip, 8080)).toBeUndefined();
    expect(reach(a.ip)).toBe(a.id);
  });

  it("a tap deleted by hand is restored by the reconcile loop", async () => {
    const tap = stack.tapName(a.id);
    const tapExists = () => {
      try {
        execFileSync("ip", ["link", "show", tap], { stdio: "ignore" });
        return true;
      } catch {
        return false;
      }
    };
    execFileSync("ip", ["link", "del", tap]);
    await waitUntil("the tap to come back", async () => tapExists(), 30_000, 500);
    await waitUntil("A to answer on 80 again", async () => reach(a.ip) === a.id, 60_000, 500);
    expect(reach(a.ip, 8080)).toBeUndefined();
  });

  it("a guest that takes its neighbour's address and announces it (ARP) gets nothing through: A keeps its traffic", async () => {
    const imageId = (await stack.call("describeImages", {})).Images[0].ImageId;
    const spoof = Buffer.from(`#!/bin/sh
ip addr add ${a.ip}/32 dev eth0
for i in 1 2 3 4 5; do arping -U -c 1 -I eth0 -s ${a.ip} ${a.ip} >/dev/null 2>&1; sleep 1; done
echo CIRRUS-SPOOFED
`).toString("base64");
    const c = (await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, SecurityGroupIds: [web], UserData: spoof })).Instances[0];
    await stack.waitForState([c.InstanceId], "running", 180_000);
    await waitUntil("C to have announced A's address", async () => (await stack.consoleText(c.InstanceId)).includes("CIRRUS-SPOOFED"), 120_000, 1000);
    const bridge = /dev (cb[0-9a-f]{13})/.exec(execFileSync("ip", ["route", "get", a.ip], { encoding: "utf8" }))![1]!;
    const macOfA = () => /lladdr (\S+)/.exec(execFileSync("ip", ["neigh", "show", a.ip, "dev", bridge], { encoding: "utf8" }))?.[1];
    const aMac = /<mac address='([^']+)'/.exec(execFileSync("virsh", ["-c", "qemu:///system", "dumpxml", `${stack.domainPrefix}${a.id}`], { encoding: "utf8" }))![1];
    expect(macOfA()).toBe(aMac);
    expect(reach(a.ip)).toBe(a.id);
    await stack.call("terminateInstances", { InstanceIds: [c.InstanceId] });
  });
});
