// The control plane's side of HostControl: enrolment, heartbeats and user
// data. A heartbeat refreshes the host's liveness (in host_heartbeats, a
// table of its own, so a heartbeat never waits on a launch holding host
// rows), applies power-state drift the hypervisor reports (it is
// authoritative for power state), and answers with the host's state when the
// agent has not applied the latest one; a change not yet compiled is pushed
// instead (hostState.ts).
import { createHash, createPublicKey, randomBytes, timingSafeEqual } from "node:crypto";
import { csrPublicKey, endpointHost, issueCertificate, newId, type Credential } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import type { Core, HostEndpoint } from "./context.js";
import { inTransaction, type Queryable } from "./db/tx.js";
import { Ec2Error } from "./errors.js";
import { compileHostState, hostStateNeeds, hostStateStatusColumns, markHostsChanged, type HostStateStatus } from "./hostState.js";
import { releaseInstances, type HeldResources } from "./instances/claims.js";
import { hostsConcernedByMembers } from "./network/affected.js";

/** What HostControl runs on: a Core without the compute side (requests, lifecycle jobs, agent calls), as its own thread builds it. */
export type HostControlCore = Pick<Core, "db" | "config" | "log" | "notifyHosts">;

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const ENDPOINT = /^[A-Za-z0-9.:[\]-]{1,253}:\d{1,5}$/;

/** Whether `given` is the non-empty secret `stored`, compared in constant time. */
function sameSecret(stored: string, given: string | undefined): boolean {
  if (!stored || !given) return false;
  const x = Buffer.from(stored);
  const y = Buffer.from(given);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** How to reach a host's agent; throws InternalError if the host row is gone. */
export async function hostEndpoint(db: Queryable, hostId: string): Promise<HostEndpoint> {
  const { rows: [host] } = await db.query<HostEndpoint>("SELECT id, endpoint, secret FROM hosts WHERE id = $1", [hostId]);
  if (!host) throw new Ec2Error("InternalError", `Host ${hostId} is not registered`);
  return host;
}

/**
 * Enrols a new host (with the cluster enrolment token) or re-registers an
 * enrolled one (with its secret, which it keeps). The token never takes
 * over a name already enrolled: that needs the host's own secret, so the
 * token's holder cannot impersonate a host or cut it off; but an agent
 * whose enrolment answer was lost may retry with the token and the key it
 * enrolled with, and gets the same identity. Answers with
 * the host's certificate from the cluster CA (`core.ca`) for the public key
 * of its request.
 */
export async function registerHost(core: HostControlCore & { ca: Credential }, enrolmentToken: string, req: agent.RegisterHostRequest): Promise<agent.RegisterHostResponse> {
  if (!HOST_NAME.test(req.hostName)) throw new Ec2Error("InvalidParameterValue", "Invalid host name");
  if (!ENDPOINT.test(req.endpoint)) throw new Ec2Error("InvalidParameterValue", "Invalid agent endpoint");
  if (!core.config.zones.includes(req.availabilityZone)) throw new Ec2Error("InvalidParameterValue", `Unknown availability zone: ${req.availabilityZone}`);
  if (!["kvm", "qemu", "fake"].includes(req.hypervisor)) throw new Ec2Error("InvalidParameterValue", "Invalid hypervisor");
  for (const n of [req.vcpus, req.memoryMib, req.diskGib]) {
    if (!Number.isInteger(n) || n < 0) throw new Ec2Error("InvalidParameterValue", "Invalid capacity");
  }
  let publicKeyPem: string;
  try {
    publicKeyPem = csrPublicKey(req.csrPem);
  } catch (err) {
    throw new Ec2Error("InvalidParameterValue", `Invalid certificate request: ${(err as Error).message}`);
  }
  const keyId = createHash("sha256").update(createPublicKey(publicKeyPem).export({ type: "spki", format: "der" })).digest("hex");
  const { rows: [existing] } = await core.db.query<{ id: string; secret: string; enrolment_key: string }>("SELECT id, secret, enrolment_key FROM hosts WHERE name = $1", [req.hostName]);
  const taken = () => new Ec2Error("AuthFailure", `Host enrolment refused: the host name ${req.hostName} is already enrolled, and re-registering it needs its host secret (a host that lost its secret enrols under another name)`);
  const tokenOk = sameSecret(enrolmentToken, req.enrolmentToken);
  // An enrolled name needs its own secret, or (an enrolment whose answer was
  // lost, retried) the token with the very key it enrolled with: the token
  // alone never takes a name over. A retired host's secret is cleared.
  if (existing && !sameSecret(existing.secret, req.hostSecret) && !(tokenOk && existing.secret !== "" && existing.enrolment_key === keyId)) throw taken();
  if (!existing && !tokenOk) throw new Ec2Error("AuthFailure", "Host enrolment refused: bad enrolment token");
  const secret = existing ? existing.secret : randomBytes(32).toString("base64url");
  const hostId = await inTransaction(core.db, async (db) => {
    const { rows: [host] } = existing
      // Matched on the secret read above: a concurrent change of the row makes this a refusal, never a takeover.
      ? await db.query<{ id: string }>(
        `UPDATE hosts SET availability_zone = $3, endpoint = $4, hypervisor = $5, vcpus = $6, memory_mib = $7, disk_gib = $8
          WHERE id = $1 AND secret = $2 RETURNING id`,
        [existing.id, existing.secret, req.availabilityZone, req.endpoint, req.hypervisor, req.vcpus, req.memoryMib, req.diskGib],
      )
      // Two enrolments of one new name: the first wins, the second is refused.
      : await db.query<{ id: string }>(
        `INSERT INTO hosts (id, name, availability_zone, endpoint, hypervisor, secret, vcpus, memory_mib, disk_gib, enrolment_key)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (name) DO NOTHING RETURNING id`,
        [newId("h"), req.hostName, req.availabilityZone, req.endpoint, req.hypervisor, secret, req.vcpus, req.memoryMib, req.diskGib, keyId],
      );
    if (!host) throw taken();
    await beat(db, host.id);
    return host.id;
  });
  core.log.info({ hostId, hostName: req.hostName, via: existing ? "secret" : "enrolment-token" }, "host registered");
  // For the host id, naming the host the control plane dials it by.
  return { hostId, hostSecret: secret, certificatePem: issueCertificate(core.ca, publicKeyPem, hostId, [endpointHost(req.endpoint)]) };
}

/** Authenticates an agent's call: the host id must exist and the secret match. */
export async function authenticateHost(core: HostControlCore, hostId: string, secret: string | undefined): Promise<void> {
  const { rows: [host] } = await core.db.query<{ secret: string }>({ name: "host-secret", text: "SELECT secret FROM hosts WHERE id = $1", values: [hostId] });
  if (!host || !sameSecret(host.secret, secret)) throw new Ec2Error("AuthFailure", "Host authentication failed");
}

/** Records that the host is alive now. */
const BEAT_SQL = "INSERT INTO host_heartbeats (host_id, last_heartbeat_at) VALUES ($1, now()) ON CONFLICT (host_id) DO UPDATE SET last_heartbeat_at = now()";
async function beat(db: Queryable, hostId: string): Promise<void> {
  await db.query(BEAT_SQL, [hostId]);
}

/**
 * A heartbeat's work in one statement (at fleet scale HostControl answers
 * hundreds a second): refresh the host's liveness; apply power-state drift,
 * only to idle instances whose state is older than the grace period, so a
 * report taken just before a worker's step landed cannot undo that step
 * (anything not reported has no domain at all); and read the host state's
 * status. $1 host, $2 drift grace (ms), $3 instances reported running, $4
 * instances reported shut off, $5 instances in some other state (paused, in
 * shutdown, crashed: a domain on its way somewhere, judged once it is there).
 *
 * A running instance found off becomes stopped, or, when its shutdown
 * behaviour is terminate and its domain is there shut off (the guest
 * powered itself off: never on the strength of a domain's absence),
 * shutting-down with a terminate step, which the sweeper queues (this
 * thread has no queue) within CIRRUS_SWEEP_AFTER_MS.
 *
 * It commits without waiting for the WAL flush (`relaxed`: the setting is
 * local to this statement's transaction, and read at its commit): during a
 * storm of launches heartbeats otherwise queued behind every other commit's
 * flush. What it writes is re-derived from the next heartbeat, so a crash
 * that loses the last fraction of a second of them loses nothing, and any
 * later synchronous commit flushes them first.
 */
const TERMINATES = "(state = 'running' AND shutdown_behavior = 'terminate' AND id = ANY($4))";
const HEARTBEAT_SQL = `
  WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)),
       beat AS (${BEAT_SQL}),
       drifted AS (
         UPDATE instances SET state = CASE WHEN state = 'stopped' THEN 'running' WHEN ${TERMINATES} THEN 'shutting-down' ELSE 'stopped' END,
                task = CASE WHEN ${TERMINATES} THEN 'terminate' END,
                task_seq = task_seq + CASE WHEN ${TERMINATES} THEN 1 ELSE 0 END,
                state_changed_at = now(),
                state_reason_code = CASE WHEN state = 'running' THEN 'Client.InstanceInitiatedShutdown' ELSE '' END,
                state_reason_message = CASE WHEN state = 'running' THEN 'Client.InstanceInitiatedShutdown: Instance initiated shutdown' ELSE '' END
          WHERE host_id = $1 AND task IS NULL AND state_changed_at < now() - $2 * interval '1 millisecond'
            AND ((state = 'running' AND NOT (id = ANY($3)) AND NOT (id = ANY($5))) OR (state = 'stopped' AND id = ANY($3)))
          RETURNING id, state)
  SELECT coalesce((SELECT json_agg(json_build_object('id', id, 'state', state)) FROM drifted), '[]') AS drifted,
         ${hostStateStatusColumns("$1")}
    FROM relaxed`;

export async function heartbeat(core: HostControlCore, req: agent.HeartbeatRequest): Promise<agent.HeartbeatResponse> {
  const running = req.instances.filter((i) => i.powerState === agent.PowerState.POWER_STATE_RUNNING).map((i) => i.instanceId);
  const shutOff = req.instances.filter((i) => i.powerState === agent.PowerState.POWER_STATE_SHUT_OFF).map((i) => i.instanceId);
  const other = req.instances.filter((i) => i.powerState === agent.PowerState.POWER_STATE_OTHER).map((i) => i.instanceId);
  const { rows: [r] } = await core.db.query<HostStateStatus & { drifted: { id: string; state: string }[] }>(
    { name: "heartbeat", text: HEARTBEAT_SQL, values: [req.hostId, core.config.CIRRUS_DRIFT_GRACE_MS, running, shutOff, other] },
  );
  for (const { id, state } of r!.drifted) core.log.warn({ hostId: req.hostId, instanceId: id, state }, state === "running" ? "instance found running" : "instance found powered off by its guest");
  const needs = hostStateNeeds(r!, req.appliedRevision);
  if (needs === "changed") core.notifyHosts([req.hostId]);
  if (needs !== "behind") return { state: undefined };
  try {
    return { state: await compileHostState(core, req.hostId) };
  } catch (err) {
    // The heartbeat itself must succeed, or the host would look dead.
    core.log.error({ hostId: req.hostId, err }, "compiling the host state failed; the heartbeat goes unanswered");
    return { state: undefined };
  }
}

/** An instance's user data, for the metadata service of its host; NotFound unless it is on that host and not terminated. */
export async function userData(core: HostControlCore, hostId: string, instanceId: string): Promise<agent.UserData> {
  const { rows: [r] } = await core.db.query<{ user_data: string }>(
    "SELECT user_data FROM instances WHERE id = $1 AND host_id = $2 AND state <> 'terminated'",
    [instanceId, hostId],
  );
  if (!r) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${instanceId}' is not on this host`);
  return { userData: Buffer.from(r.user_data, "base64") };
}

/** How many instance ids one ClassifyInstances call may ask about. */
export const CLASSIFY_MAX_IDS = 1000;

/**
 * What the control plane knows of instances an agent holds unasked (its
 * evidence for removing them, docs/ARCHITECTURE.md "Orphans"): TERMINATED
 * only for an instance terminated while placed on `hostId`, UNKNOWN only
 * for an id with no row at all, KEEP for everything else. Reads only.
 */
export async function classifyInstances(core: HostControlCore, hostId: string, instanceIds: readonly string[]): Promise<agent.ClassifyInstancesResponse> {
  if (instanceIds.length > CLASSIFY_MAX_IDS) throw new Ec2Error("InvalidParameterValue", `At most ${CLASSIFY_MAX_IDS} instance ids per call, got ${instanceIds.length}`);
  const ids = [...new Set(instanceIds)];
  const { rows } = await core.db.query<{ id: string; terminated_here: boolean }>(
    "SELECT id, (state = 'terminated' AND host_id IS NOT DISTINCT FROM $2) AS terminated_here FROM instances WHERE id = ANY($1)",
    [ids, hostId],
  );
  const known = new Map(rows.map((r) => [r.id, r.terminated_here]));
  const { InstanceVerdict: V } = agent;
  return {
    instances: ids.map((id) => {
      const here = known.get(id);
      return { instanceId: id, verdict: here === undefined ? V.INSTANCE_VERDICT_UNKNOWN : here ? V.INSTANCE_VERDICT_TERMINATED : V.INSTANCE_VERDICT_KEEP };
    }),
  };
}

/**
 * The operator's word that a dead host is gone for good (its disks with
 * it): every instance on it not yet terminated becomes terminated, with
 * what it held released (capacity, private and elastic addresses) and any
 * step in flight superseded; the host takes no more instances and its
 * agent is refused from then on (its secret is cleared), so a machine that
 * comes back cannot act as it. Refused for a host that is alive: its guests
 * may be running, and only their host can say they are gone. Returns the
 * instances it terminated.
 */
export async function retireHost(core: Pick<Core, "db" | "config" | "log" | "notifyHosts">, hostId: string): Promise<string[]> {
  const { terminated, volumeSteps, hosts } = await inTransaction(core.db, async (db) => {
    const { rows: [host] } = await db.query<{ alive: boolean; retired: boolean }>(
      `SELECT coalesce(b.last_heartbeat_at > now() - $2 * interval '1 millisecond', false) AS alive, h.retired_at IS NOT NULL AS retired
         FROM hosts h LEFT JOIN host_heartbeats b ON b.host_id = h.id WHERE h.id = $1 FOR UPDATE OF h`,
      [hostId, core.config.CIRRUS_HOST_DEAD_AFTER_MS],
    );
    if (!host) throw new Ec2Error("InvalidHostId.NotFound", `The host ID '${hostId}' does not exist`);
    if (host.alive) throw new Ec2Error("IncorrectHostState", `The host '${hostId}' is alive (it heartbeated within ${core.config.CIRRUS_HOST_DEAD_AFTER_MS} ms): stop its agent, or let it finish its work, first`);
    await db.query("UPDATE hosts SET retired_at = coalesce(retired_at, now()), secret = '' WHERE id = $1", [hostId]);
    const { rows } = await db.query<HeldResources>(
      `UPDATE instances SET state = 'terminated', task = NULL, task_seq = task_seq + 1, terminated_at = now(), state_changed_at = now(),
              state_reason_code = 'Server.InternalError', state_reason_message = 'Server.InternalError: the instance''s host was retired'
        WHERE host_id = $1 AND state <> 'terminated' RETURNING id, host_id, vcpus, memory_mib, disk_gib`,
      [hostId],
    );
    const volumeSteps = await releaseInstances(db, rows);
    return { terminated: rows.map((r) => r.id), volumeSteps, hosts: await markHostsChanged(db, await hostsConcernedByMembers(db, rows.map((r) => r.id))) };
  });
  core.notifyHosts(hosts);
  // No queue here (cirrus-admin works on the database alone): the sweeper queues the volumes' deletes once they are stale.
  if (volumeSteps.length) core.log.info({ hostId, volumeSteps: volumeSteps.flat().length }, "volumes of the retired host's instances released; DeleteOnTermination ones are deleted by the sweeper");
  core.log.warn({ hostId, instanceIds: terminated }, "host retired; its instances are terminated");
  return terminated;
}
