// Wires one host agent: runner → driver → gRPC server → registration →
// heartbeat + reconcile loop, until the signal asks it to stop.
import { status } from "@grpc/grpc-js";
import type { Logger } from "@cirrus/common";
import type { AgentConfig } from "./config.js";
import { ControlPlane, errorText, grpcCode, sleep } from "./control.js";
import { FakeDriver } from "./driver/fake.js";
import { LibvirtDriver } from "./driver/libvirt/driver.js";
import { probeHypervisor } from "./driver/libvirt/probe.js";
import type { HypervisorDriver } from "./driver/types.js";
import { KeyedMutex } from "./keyed-mutex.js";
import { Reconciler } from "./reconcile.js";
import { LocalRunner } from "./runner/local.js";
import { SshRunner } from "./runner/ssh.js";
import { serveHostAgent } from "./server.js";

export async function createDriver(config: AgentConfig, log: Logger): Promise<HypervisorDriver> {
  if (config.driver === "fake") {
    return new FakeDriver({ capacity: config.fake.capacity, delayMs: config.fake.delayMs, failureRate: config.fake.failureRate });
  }
  const runner = config.ssh ? new SshRunner(config.ssh) : new LocalRunner();
  if (config.ssh && !config.ssh.hostKeyFingerprint) log.warn({ runner: runner.target }, "CIRRUS_SSH_HOST_FINGERPRINT is not set: the host's SSH key is not verified");
  try {
    const hypervisor = config.hypervisor === "auto" ? await probeHypervisor(runner, log) : config.hypervisor;
    log.info({ runner: runner.target, hypervisor, uri: config.libvirtUri }, "libvirt driver ready");
    return new LibvirtDriver({ runner, uri: config.libvirtUri, hypervisor, domainPrefix: config.domainPrefix, instancesDir: config.instancesDir, log });
  } catch (err) {
    await runner.close();
    throw err;
  }
}

/**
 * Runs the agent until `signal` aborts, then shuts down in order (loop,
 * server with a grace period for calls in flight, connections). Rejects on
 * startup failures (port taken, host unreachable, RegistrationRejected); once
 * registered, control-plane outages are retried, never fatal.
 */
export async function runAgent(config: AgentConfig, log: Logger, signal: AbortSignal): Promise<void> {
  const driver = await createDriver(config, log);
  const control = new ControlPlane({ endpoint: config.controlEndpoint, stateDir: config.stateDir, enrolmentToken: config.enrolmentToken, log });
  const locks = new KeyedMutex();
  let server: Awaited<ReturnType<typeof serveHostAgent>> | undefined;
  try {
    // Listen before registering: the control plane may dial us as soon as it knows us.
    server = await serveHostAgent(config.listen, {
      driver,
      locks,
      hostSecret: () => control.identity?.hostSecret,
      hostId: () => control.identity?.hostId,
      stopTimeoutMs: config.stopTimeoutMs,
      log,
    });
    log.info({ listen: config.listen, advertise: config.advertise, port: server.port }, "HostAgent service listening");
    const describe = async () => ({
      hostName: config.hostName,
      availabilityZone: config.availabilityZone,
      ...(await driver.capacity()),
      ...config.capacityOverride,
      hypervisor: driver.kind,
      endpoint: config.advertise,
    });
    await control.register(describe, signal);
    await heartbeatLoop(driver, control, new Reconciler(driver, locks, config.orphanGraceMs, log), describe, config.heartbeatMs, log, signal);
  } finally {
    await server?.stop();
    control.close();
    await driver.close();
  }
}

async function heartbeatLoop(
  driver: HypervisorDriver,
  control: ControlPlane,
  reconciler: Reconciler,
  describe: Parameters<ControlPlane["register"]>[0],
  heartbeatMs: number,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  let failures = 0;
  while (!signal.aborted) {
    try {
      const actual = await driver.list();
      const response = await control.heartbeat(actual);
      if (failures > 0) log.info({ hostId: control.identity?.hostId, failures }, "heartbeat restored");
      failures = 0;
      await reconciler.round(actual, response);
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
