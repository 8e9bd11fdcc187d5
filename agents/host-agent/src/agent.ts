// Wires one host agent: runner → driver and host network → gRPC server →
// registration → heartbeat + reconcile loop, until the signal asks it to stop.
import { status } from "@grpc/grpc-js";
import { lookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";
import { endpointHost, type Cidr, type Logger } from "@cirrus/common";
import type { AgentConfig } from "./config.js";
import { ControlPlane, errorText, grpcCode, RegistrationRejected, sleep } from "./control.js";
import { FakeDriver } from "./driver/fake.js";
import { LibvirtDriver } from "./driver/libvirt/driver.js";
import { probeHypervisor } from "./driver/libvirt/probe.js";
import type { HypervisorDriver } from "./driver/types.js";
import { KeyedMutex } from "./keyed-mutex.js";
import { HostNetwork } from "./network/host-network.js";
import { UnmanagedNetwork, type NetworkStateTarget } from "./network/types.js";
import { OwnershipRecords } from "./ownership.js";
import { Reconciler, type OrphanEvidence } from "./reconcile.js";
import { LocalRunner } from "./runner/local.js";
import { SshRunner } from "./runner/ssh.js";
import type { CommandRunner } from "./runner/types.js";
import { serveHostAgent, type HostStorage } from "./server.js";
import { copySnapshot } from "./storage/copy.js";
import { DirectoryVolumeStore } from "./storage/directory.js";
import { DirectorySnapshotStore } from "./storage/directory-snapshots.js";

export interface Host {
  driver: HypervisorDriver;
  network: NetworkStateTarget;
  storage: HostStorage;
}

/**
 * The directory backend's stores on the driven host (through `runner`).
 * They touch nothing until first used; agents sharing the directories
 * (two hosts of a zone, or two agents on one machine) are serialized by
 * the stores' own lock files.
 */
export function directoryStorage(config: AgentConfig, runner: CommandRunner, log: Logger): HostStorage {
  const { volumeDir, snapshotDir, transferDir } = config.storage;
  const owner = config.hostName;
  // Export and import never touch a volume, an instance's disk or the agent's secrets.
  const snapshots = new DirectorySnapshotStore({ runner, root: snapshotDir, owner, transferDirs: [transferDir], privateDirs: [volumeDir, config.instancesDir, config.stateDir], log });
  const volumes = new DirectoryVolumeStore({ runner, root: volumeDir, owner, snapshots });
  return { volumes, snapshots, copySnapshot: (source, target) => copySnapshot(snapshots, runner, transferDir, source, target) };
}

/**
 * The driver, the host network it uses and the block storage; the fake
 * driver has no network (states are validated and kept) but real storage
 * (on the local machine). `userData` is where the metadata service gets an
 * instance's user data (the control plane).
 */
export async function createHost(config: AgentConfig, log: Logger, userData: (instanceId: string) => Promise<Buffer>): Promise<Host> {
  if (config.driver === "fake") {
    return {
      driver: new FakeDriver({ capacity: config.fake.capacity, delayMs: config.fake.delayMs, failureRate: config.fake.failureRate }),
      network: new UnmanagedNetwork(),
      storage: directoryStorage(config, new LocalRunner(), log),
    };
  }
  const runner = config.ssh ? new SshRunner(config.ssh) : new LocalRunner();
  if (config.ssh && !config.ssh.hostKeyFingerprint) log.warn({ runner: runner.target }, "CIRRUS_SSH_HOST_FINGERPRINT is not set: the host's SSH key is not verified");
  // The metadata service listens on the bridges' addresses, so it must run on the host itself.
  if (config.ssh) log.warn({ runner: runner.target }, "the host is driven over SSH: guests get no metadata service");
  try {
    const hypervisor = config.hypervisor === "auto" ? await probeHypervisor(runner, log) : config.hypervisor;
    const { dir, prefix, metadataPort, imdsV2Required, outboundNat, managementCidrs } = config.network;
    const network = new HostNetwork({
      runner,
      dir,
      prefix,
      metadata: config.ssh ? undefined : { port: metadataPort, v2Required: imdsV2Required, userData },
      outboundNat,
      management: [...managementCidrs, ...(await controlPlaneAddress(config.controlEndpoint, log))],
      orphanGraceMs: config.orphanGraceMs,
      log,
    });
    log.info({ runner: runner.target, hypervisor, uri: config.libvirtUri, netPrefix: prefix, outboundNat: outboundNat ?? "off" }, "libvirt driver ready");
    const driver = new LibvirtDriver({ runner, uri: config.libvirtUri, hypervisor, domainPrefix: config.domainPrefix, instancesDir: config.instancesDir,
      imageDirs: config.imageDirs, privateDirs: [config.stateDir], network, log,
    });
    return { driver, network, storage: directoryStorage(config, runner, log) };
  } catch (err) {
    await runner.close();
    throw err;
  }
}

/**
 * The control endpoint's IPv4 address as a /32, for the ranges guests may
 * never reach; none for a loopback endpoint (guests cannot reach the host's
 * loopback) or one that does not resolve (logged: list it in
 * CIRRUS_MANAGEMENT_CIDRS then).
 */
async function controlPlaneAddress(endpoint: string, log: Logger): Promise<Cidr[]> {
  try {
    const { address } = await lookup(endpointHost(endpoint), { family: 4 });
    return address.startsWith("127.") ? [] : [{ network: address, prefix: 32 }];
  } catch (err) {
    log.warn({ endpoint, err: String(err) }, "cannot resolve the control endpoint; guests are kept from it only if CIRRUS_MANAGEMENT_CIDRS lists it");
    return [];
  }
}

/**
 * Runs the agent until `signal` aborts, then shuts down in order (loop,
 * server with a grace period for calls in flight, connections). Rejects on
 * startup failures (port taken, host unreachable, RegistrationRejected); once
 * registered, control-plane outages are retried, never fatal.
 */
export async function runAgent(config: AgentConfig, log: Logger, signal: AbortSignal): Promise<void> {
  const caPem = await readFile(config.controlCaFile, "utf8").catch((err: unknown) => {
    throw new RegistrationRejected(`cannot read the cluster CA's certificate ${config.controlCaFile} (CIRRUS_CONTROL_CA; the control plane writes it to its CIRRUS_CA_CERT_FILE): ${(err as Error).message}`);
  });
  const control = new ControlPlane({ endpoint: config.controlEndpoint, caPem, stateDir: config.stateDir, enrolmentToken: config.enrolmentToken, log });
  const { driver, network, storage } = await createHost(config, log, (id) => control.userData(id));
  const locks = new KeyedMutex();
  const owned = new OwnershipRecords(config.stateDir);
  let server: Awaited<ReturnType<typeof serveHostAgent>> | undefined;
  try {
    const describe = async () => ({
      hostName: config.hostName,
      availabilityZone: config.availabilityZone,
      ...(await driver.capacity()),
      ...config.capacityOverride,
      hypervisor: driver.kind,
      endpoint: config.advertise,
    });
    // Registration first: it gives the certificate the server presents. The
    // control plane may dial before the server listens; those calls fail and are retried.
    await control.register(describe, signal);
    server = await serveHostAgent(config.listen, {
      driver,
      network,
      locks,
      hostSecret: () => control.identity?.hostSecret,
      hostId: () => control.identity?.hostId,
      owned,
      stopTimeoutMs: config.stopTimeoutMs,
      storage,
      detachWaitMs: config.storage.detachWaitMs,
      log,
    }, { caPem, own: control.credential! });
    log.info({ listen: config.listen, advertise: config.advertise, port: server.port }, "HostAgent service listening");
    const evidence: OrphanEvidence = {
      classify: (ids) => control.classify(ids),
      madeHere: async (id) => (await owned.madeFor(id)) === control.identity?.hostId,
      forget: (id) => owned.forget(id),
    };
    const reconciler = new Reconciler({ driver, locks, evidence, graceMs: config.orphanGraceMs, quarantineRetentionMs: config.quarantineRetentionMs, log });
    await heartbeatLoop(driver, network, control, reconciler, describe, config.heartbeatMs, log, signal);
  } finally {
    await server?.stop();
    control.close();
    await network.close();
    await driver.close();
  }
}

async function heartbeatLoop(
  driver: HypervisorDriver,
  network: NetworkStateTarget,
  control: ControlPlane,
  reconciler: Reconciler,
  describe: Parameters<ControlPlane["register"]>[0],
  heartbeatMs: number,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  let failures = 0;
  let networkFailures = 0;
  while (!signal.aborted) {
    try {
      const actual = await driver.list();
      const state = await control.heartbeat(actual, network.current()?.revision ?? 0);
      if (failures > 0) log.info({ hostId: control.identity?.hostId, failures }, "heartbeat restored");
      failures = 0;
      // Its own failures: a network problem must not count as a lost heartbeat (which re-registers).
      try {
        // A newer state than the one applied (a push was missed); the round below re-applies the current one.
        if (state) await network.applyHostState(state);
        await network.reconcile(actual.map((d) => d.instanceId));
        if (networkFailures > 0) log.info({ failures: networkFailures }, "host network reconciled again");
        networkFailures = 0;
      } catch (err) {
        networkFailures++;
        if (networkFailures === 1 || networkFailures % 10 === 0) log.error({ failures: networkFailures, err: errorText(err) }, "reconciling the host network failed");
      }
      await reconciler.round(actual, network.current());
    } catch (err) {
      failures++;
      // Log the first failure and then every tenth, so an outage is visible without flooding.
      if (failures === 1 || failures % 10 === 0) log.warn({ hostId: control.identity?.hostId, failures, err: errorText(err) }, "heartbeat failed");
      // The control plane no longer accepts our secret (rotated, host re-created): register again.
      if (grpcCode(err) === status.UNAUTHENTICATED) await control.register(describe, signal);
    }
    await sleep(heartbeatMs, signal);
  }
}
