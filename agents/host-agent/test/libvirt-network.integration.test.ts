// The libvirt driver with host networking, end to end with a real guest: the
// test AMI (deploy/build-test-ami.sh) under TCG gets a NIC on the test
// subnet's bridge, takes its address from our dnsmasq, reads its instance id
// and user-data from the metadata service at 169.254.169.254, and serves
// HTTP on port 80, which a client namespace reaches only as the firewall
// and the elastic-IP mapping allow. Addresses, safety checks and teardown:
// net-fixture.ts. The guest's egress rules stay empty, so nothing it sends
// beyond DHCP and metadata leaves its tap. A tap deleted by hand is repaired
// by the reconcile round (the NIC re-plugged into the running guest).
import { rmSync } from "node:fs";
import { newId } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { KeyedMutex } from "../src/keyed-mutex.js";
import { bridgeName, instanceChain, tapName } from "../src/network/names.js";
import { Reconciler } from "../src/reconcile.js";
import { LocalRunner } from "../src/runner/local.js";
import { LIBVIRT_URI, TEST_IMAGE_DIRS, testAmi, testInstancesDir, virsh } from "./ami-fixture.js";
import { eventually, quietLogger } from "./helpers.js";
import { expectRoute, fetchFrom, run, TestNetwork } from "./net-fixture.js";

const { PowerState } = agent;
const DOMAIN_PREFIX = `cirrusnettest-${process.pid.toString(16)}-`;

describe("LibvirtDriver with a NIC: a real guest on the test bridge", () => {
  const net = new TestNetwork();
  const id = newId("i");
  const ip = net.host(20);
  let instancesDir: string;
  let driver: LibvirtDriver;
  let spec: agent.InstanceSpec;

  const consoleText = async () => (await driver.consoleOutput(id)).toString("utf8");
  const state = (ingress: agent.FirewallRule[], elasticIps: agent.ElasticIpMapping[] = []): agent.HostNetworkState => ({
    firewalls: [{ instanceId: id, ingress, egress: [] }],
    elasticIps,
    metadata: [
      {
        instanceId: id,
        amiId: "ami-0000000000000test",
        instanceType: "t3.micro",
        availabilityZone: "lab-1a",
        region: "lab-1",
        localIpv4: ip,
        publicIpv4: "",
        mac: "52:54:00:c1:00:14",
        localHostname: "",
        reservationId: "r-0123456789abcdef0",
        securityGroups: [],
        publicKeys: [],
      },
    ],
  });
  const web = [{ protocol: "tcp", fromPort: 80, toPort: 80, cidrs: [`${net.clientIp}/32`] }];

  beforeAll(async () => {
    const image = testAmi();
    instancesDir = testInstancesDir();
    const network = await net.setUp(Date.now, 60_000);
    net.links.push(tapName(id));
    driver = new LibvirtDriver({ runner: new LocalRunner(), uri: LIBVIRT_URI, hypervisor: "qemu", domainPrefix: DOMAIN_PREFIX, instancesDir, imageDirs: TEST_IMAGE_DIRS, privateDirs: [], network, log: quietLogger() });
    const nic = { subnetId: net.subnetId, subnetCidr: net.subnet, gatewayIp: net.gateway, privateIp: ip, macAddress: "52:54:00:c1:00:14" };
    spec = { instanceId: id, vcpus: 1, memoryMib: 256, rootDiskGib: 1, image, network: nic, reuseRootDisk: false, volumes: [], instanceStore: [] };
    net.userData.set(id, Buffer.from("#!/bin/sh\necho user-data-ran\n"));
    // As the control plane does: the instance's network state first, then the instance.
    await net.apply(state([]), [spec]);
  }, 600_000);

  afterAll(async () => {
    const name = DOMAIN_PREFIX + id;
    if (virsh("list", "--all", "--name").includes(name)) {
      try {
        virsh("destroy", name);
      } catch {
        // already shut off
      }
      virsh("undefine", name);
    }
    await net.tearDown();
    if (instancesDir) rmSync(instancesDir, { recursive: true, force: true });
  }, 60_000);

  it("boots with its NIC on the bridge, gets its address by DHCP, and reads its metadata and user-data", async () => {
    expect(await driver.createInstance(spec)).toBe(PowerState.POWER_STATE_RUNNING);
    expect(virsh("domiflist", DOMAIN_PREFIX + id)).toMatch(new RegExp(`${tapName(id)}\\s+bridge\\s+${bridgeName(net.subnetId)}\\s+virtio\\s+52:54:00:c1:00:14`));
    expect(await run("ip", "-br", "link", "show", "master", net.bridge)).toContain(tapName(id));
    await eventually(async () => (await consoleText()).includes(`CIRRUS-USERDATA-END instance-id=${id}`), 120_000, "the guest to run its user-data");
    const out = await consoleText();
    expect(out).toContain(`CIRRUS-NET instance-id=${id} ip=${ip}/24 gw=${net.gateway}`);
    expect(out).toContain(`CIRRUS-METADATA instance-id=${id} metadata-instance-id=${id}`);
    expect(out).toMatch(/user-data-ran\s+CIRRUS-USERDATA-END instance-id=\S+ rc=0/);
  }, 180_000);

  it("is reachable from the client only as its ingress rules and elastic IP allow", async () => {
    await expectRoute(net.clientNs, ip, "eth0");
    await expectRoute(undefined, ip, net.bridge);
    expect((await fetchFrom(net.clientNs, `http://${ip}/`)).code).toBe(28);
    await net.apply(state(web), [spec]);
    expect(await fetchFrom(net.clientNs, `http://${ip}/`)).toMatchObject({ ok: true, body: `${id}\n` });
    expect((await fetchFrom(net.clientNs, `http://${ip}:8080/`)).code).toBe(28);
    await expectRoute(net.clientNs, net.elasticIp, "eth0");
    await net.apply(state(web, [{ publicIp: net.elasticIp, privateIp: ip, instanceId: id }]), [spec]);
    expect(await fetchFrom(net.clientNs, `http://${net.elasticIp}/`)).toMatchObject({ ok: true, body: `${id}\n` });
  }, 60_000);

  it("repairs a tap deleted by hand: the reconcile round re-plugs the NIC into the running guest, which is reachable again", async () => {
    const name = DOMAIN_PREFIX + id;
    const tap = tapName(id);
    const eip = [{ publicIp: net.elasticIp, privateIp: ip, instanceId: id }];
    const hostState = await net.apply(state(web, eip), [spec]).then(() => net.network!.current()!);
    const keepAll = { classify: async () => new Map(), madeHere: async () => false, forget: async () => undefined };
    const reconciler = new Reconciler({ driver, locks: new KeyedMutex(), evidence: keepAll, graceMs: 600_000, quarantineRetentionMs: 600_000, log: quietLogger() });
    // What the heartbeat loop does each round: the host network's sync, then the reconciler's round.
    const reconcileRound = async () => {
      await net.network!.reconcile([id]);
      return reconciler.round(await driver.list(), hostState);
    };
    const netLines = () => consoleText().then((t) => t.split(`CIRRUS-NET instance-id=${id} ip=${ip}/24 gw=${net.gateway}`).length - 1);
    const linesBefore = await netLines();
    const bootsBefore = (await consoleText()).split("CIRRUS-BOOT").length;
    expect(await reconcileRound()).toEqual({ quarantined: [], kept: [], repaired: [] });

    await run("ip", "link", "del", tap);
    await expectRoute(net.clientNs, ip, "eth0");
    await expectRoute(undefined, ip, net.bridge);
    expect((await fetchFrom(net.clientNs, `http://${ip}/`)).ok).toBe(false);

    const roundStarted = Date.now();
    expect(await reconcileRound()).toEqual({ quarantined: [], kept: [], repaired: [id] });
    const roundMs = Date.now() - roundStarted;
    expect(await run("ip", "-br", "link", "show", "master", net.bridge)).toContain(tap);
    expect(virsh("domiflist", name)).toMatch(new RegExp(`${tap}\\s+bridge\\s+${net.bridge}\\s+virtio\\s+52:54:00:c1:00:14`));
    expect(virsh("dumpxml", "--inactive", name)).toContain(`<target dev='${tap}'/>`);

    await expectRoute(net.clientNs, ip, "eth0");
    await eventually(async () => (await fetchFrom(net.clientNs, `http://${ip}/`)).ok, 60_000, "the guest to be reachable again");
    const reachableMs = Date.now() - roundStarted;
    expect(await fetchFrom(net.clientNs, `http://${ip}/`)).toMatchObject({ ok: true, body: `${id}\n` });
    // The same firewall and elastic IP as before.
    expect((await fetchFrom(net.clientNs, `http://${ip}:8080/`)).code).toBe(28);
    await expectRoute(net.clientNs, net.elasticIp, "eth0");
    expect(await fetchFrom(net.clientNs, `http://${net.elasticIp}/`)).toMatchObject({ ok: true, body: `${id}\n` });
    // No reboot; the guest reported the lease of its new eth0.
    await eventually(async () => (await netLines()) === linesBefore + 1, 30_000, "the guest's CIRRUS-NET line for its new eth0");
    expect((await consoleText()).split("CIRRUS-BOOT").length).toBe(bootsBefore);
    console.info(`reconcile round re-plugging the NIC: ${roundMs} ms; guest reachable again ${reachableMs} ms after the round started`);

    // A tap taken off its bridge is only put back.
    await run("ip", "link", "set", "dev", tap, "nomaster");
    expect((await fetchFrom(net.clientNs, `http://${ip}/`)).ok).toBe(false);
    expect(await reconcileRound()).toEqual({ quarantined: [], kept: [], repaired: [id] });
    expect(await fetchFrom(net.clientNs, `http://${ip}/`)).toMatchObject({ ok: true, body: `${id}\n` });
    expect(await reconcileRound()).toEqual({ quarantined: [], kept: [], repaired: [] });
    expect(await netLines()).toBe(linesBefore + 1);
  }, 180_000);

  it("keeps the NIC across stop and start, and destroyInstance removes the tap and the firewall chains", async () => {
    expect(await driver.stopInstance(id, { force: true, timeoutMs: 0 })).toBe(PowerState.POWER_STATE_SHUT_OFF);
    expect(await driver.startInstance(id)).toBe(PowerState.POWER_STATE_RUNNING);
    await eventually(async () => /CIRRUS-BOOT instance-id=\S+ boot=2[^]*CIRRUS-NET instance-id=\S+ ip=/.test(await consoleText()), 120_000, "the second boot's DHCP lease");
    expect((await consoleText()).split("CIRRUS-BOOT")[2]).toContain(`CIRRUS-NET instance-id=${id} ip=${ip}/24`);
    expect(await driver.destroyInstance(id)).toBe(PowerState.POWER_STATE_ABSENT);
    expect(await run("ip", "-br", "link", "show", "master", net.bridge)).not.toContain(tapName(id));
    const filter = await run("iptables-save", "-t", "filter");
    expect(filter).not.toContain(instanceChain(net.prefix, id, "IN"));
    expect(await run("iptables-save", "-t", "nat")).not.toContain(net.elasticIp);
  }, 180_000);
});
