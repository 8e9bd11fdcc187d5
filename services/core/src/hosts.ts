// The control plane's side of HostControl: enrolment and heartbeats. A
// heartbeat refreshes the host's liveness, applies power-state drift the
// hypervisor reports (it is authoritative for power state), and answers with
// what this host should be running, for the agent's reconcile loop.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { Ec2Error, instanceSpecOf, instanceSpecSql, newId, type InstanceSpecRow } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import type { DomainContext } from "./context.js";
import type { InstanceRow } from "./instances/model.js";
import { hostNetworkState } from "./network/hostState.js";

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const ENDPOINT = /^[A-Za-z0-9.:[\]-]{1,253}:\d{1,5}$/;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function registerHost(ctx: DomainContext, req: agent.RegisterHostRequest): Promise<agent.RegisterHostResponse> {
  if (!HOST_NAME.test(req.hostName)) throw new Ec2Error("InvalidParameterValue", "Invalid host name");
  if (!ENDPOINT.test(req.endpoint)) throw new Ec2Error("InvalidParameterValue", "Invalid agent endpoint");
  if (!ctx.config.zones.includes(req.availabilityZone)) throw new Ec2Error("InvalidParameterValue", `Unknown availability zone: ${req.availabilityZone}`);
  if (!["kvm", "qemu", "fake"].includes(req.hypervisor)) throw new Ec2Error("InvalidParameterValue", "Invalid hypervisor");
  for (const n of [req.vcpus, req.memoryMib, req.diskGib]) {
    if (!Number.isInteger(n) || n < 0) throw new Ec2Error("InvalidParameterValue", "Invalid capacity");
  }
  const { rows: [existing] } = await ctx.pool.query<{ id: string; secret: string }>("SELECT id, secret FROM hosts WHERE name = $1", [req.hostName]);
  const bySecret = existing && req.hostSecret && sameSecret(existing.secret, req.hostSecret);
  const byToken = req.enrolmentToken && sameSecret(ctx.config.CIRRUS_ENROLMENT_TOKEN, req.enrolmentToken);
  if (!bySecret && !byToken) throw new Ec2Error("AuthFailure", "Host enrolment refused: bad enrolment token or host secret");
  // Re-registering with the secret keeps it; enrolling with the token issues a new one.
  const secret = bySecret ? req.hostSecret : randomBytes(32).toString("base64url");
  const { rows: [host] } = await ctx.pool.query<{ id: string }>(
    `INSERT INTO hosts (id, name, availability_zone, endpoint, hypervisor, secret, vcpus, memory_mib, disk_gib, last_heartbeat_at)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9, now())
     ON CONFLICT (name) DO UPDATE SET availability_zone = EXCLUDED.availability_zone, endpoint = EXCLUDED.endpoint,
       hypervisor = EXCLUDED.hypervisor, secret = EXCLUDED.secret, vcpus = EXCLUDED.vcpus, memory_mib = EXCLUDED.memory_mib,
       disk_gib = EXCLUDED.disk_gib, last_heartbeat_at = now()
     RETURNING id`,
    [newId("h"), req.hostName, req.availabilityZone, req.endpoint, req.hypervisor, secret, req.vcpus, req.memoryMib, req.diskGib],
  );
  ctx.log.info({ hostId: host!.id, hostName: req.hostName, via: bySecret ? "secret" : "enrolment-token" }, "host registered");
  return { hostId: host!.id, hostSecret: secret };
}

/** Authenticates an agent's call: the host id must exist and the secret match. */
export async function authenticateHost(ctx: DomainContext, hostId: string, secret: string | undefined): Promise<void> {
  const { rows: [host] } = await ctx.pool.query<{ secret: string }>("SELECT secret FROM hosts WHERE id = $1", [hostId]);
  if (!host || !secret || !sameSecret(host.secret, secret)) throw new Ec2Error("AuthFailure", "Host authentication failed");
}

export async function heartbeat(ctx: DomainContext, req: agent.HeartbeatRequest): Promise<agent.HeartbeatResponse> {
  await ctx.pool.query("UPDATE hosts SET last_heartbeat_at = now() WHERE id = $1", [req.hostId]);
  const running = new Set(req.instances.filter((i) => i.powerState === agent.PowerState.POWER_STATE_RUNNING).map((i) => i.instanceId));
  const shutOff = new Set(req.instances.filter((i) => i.powerState === agent.PowerState.POWER_STATE_SHUT_OFF).map((i) => i.instanceId));
  // Drift is applied only to idle instances whose state is older than the
  // grace period, so a report taken just before a worker's step landed
  // cannot undo that step. Anything not reported has no domain at all.
  const grace = ctx.config.CIRRUS_DRIFT_GRACE_MS;
  const { rows: stopped } = await ctx.pool.query<{ id: string }>(
    `UPDATE instances SET state = 'stopped', state_changed_at = now(),
            state_reason_code = 'Client.InstanceInitiatedShutdown',
            state_reason_message = 'Client.InstanceInitiatedShutdown: the host found the instance powered off'
      WHERE host_id = $1 AND state = 'running' AND task IS NULL AND state_changed_at < now() - $2 * interval '1 millisecond'
        AND NOT (id = ANY($3)) RETURNING id`,
    [req.hostId, grace, [...running]],
  );
  const { rows: started } = await ctx.pool.query<{ id: string }>(
    `UPDATE instances SET state = 'running', state_changed_at = now(), state_reason_code = '', state_reason_message = ''
      WHERE host_id = $1 AND state = 'stopped' AND task IS NULL AND state_changed_at < now() - $2 * interval '1 millisecond'
        AND id = ANY($3) RETURNING id`,
    [req.hostId, grace, [...running]],
  );
  for (const { id } of stopped) ctx.log.warn({ hostId: req.hostId, instanceId: id, shutOff: shutOff.has(id) }, "instance found powered off: now stopped");
  for (const { id } of started) ctx.log.warn({ hostId: req.hostId, instanceId: id }, "instance found running: now running");
  const { rows } = await ctx.pool.query<InstanceRow & InstanceSpecRow>(`${instanceSpecSql()} WHERE i.host_id = $1 AND i.state <> 'terminated'`, [req.hostId]);
  return {
    instances: rows.map((r) => ({ spec: instanceSpecOf(r), state: r.state, busy: r.task !== null })),
    network: await hostNetworkState(ctx.pool, ctx.config, req.hostId, ctx.log),
  };
}
