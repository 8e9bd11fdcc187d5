// A host's state: every instance the control plane wants on it and its
// network (firewalls, elastic IPs, metadata), compiled at one moment with
// the next per-host revision, and sent to its agent by push (HostNotifier)
// or in a heartbeat's answer when the agent is behind. Every change that
// concerns a host marks it in the change's own transaction
// (markHostsChanged), so the next heartbeat compiles a new state even when
// the push after commit never happened.
import { AGENT_MAX_MESSAGE_BYTES } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import type { Core } from "./context.js";
import { inTransaction, type Queryable } from "./db/tx.js";
import { instanceSpecOf, instanceSpecSql, type InstanceSpecRow } from "./instances/spec.js";
import { hostNetworkState } from "./network/hostState.js";

/** Room left in a message for gRPC's own framing. */
const ENVELOPE_BYTES = 4096;
/** How long a freshly compiled state is left to its push before heartbeats deliver it instead. */
const PUSH_GRACE_MS = 2000;

/**
 * Marks these hosts' states changed, inside the transaction that changes
 * them. Returns the hosts (deduplicated), to notify after the commit.
 */
export async function markHostsChanged(db: Queryable, hostIds: readonly string[]): Promise<string[]> {
  const unique = [...new Set(hostIds)];
  if (unique.length) await db.query("INSERT INTO host_state_changes (host_id) SELECT unnest($1::text[])", [unique]);
  return unique;
}

/** Whether a host's state has changed since it was last compiled, and the last compiled revision and whether it is older than PUSH_GRACE_MS (null when none was compiled). */
export interface HostStateStatus {
  changed: boolean;
  revision: string | null;
  settled: boolean | null;
}

/** Select-list columns giving the HostStateStatus of the host whose id is the parameter `hostParam` (such as "$1"), for the heartbeat's one statement. */
export function hostStateStatusColumns(hostParam: string): string {
  return `EXISTS (SELECT 1 FROM host_state_changes WHERE host_id = ${hostParam}) AS changed,
          (SELECT revision FROM host_states WHERE host_id = ${hostParam}) AS revision,
          (SELECT compiled_at < now() - interval '${PUSH_GRACE_MS} milliseconds' FROM host_states WHERE host_id = ${hostParam}) AS settled`;
}

/**
 * What a heartbeat from an agent at `appliedRevision` calls for: `behind`,
 * the agent has not applied a state compiled more than PUSH_GRACE_MS ago
 * (it missed a push, or restarted), so the answer carries a new one;
 * `changed`, a change marked the host since, which a push will deliver (so
 * heartbeats never compile what a push is about to); neither, nothing.
 */
export function hostStateNeeds(status: HostStateStatus, appliedRevision: number): "behind" | "changed" | undefined {
  if (status.revision === null || (appliedRevision < Number(status.revision) && (status.settled || appliedRevision === 0))) return "behind";
  return status.changed ? "changed" : undefined;
}

/**
 * The host's state now, with its next revision. Compiles for one host are
 * serialized by the revision row's lock, and each reads the database after
 * taking it, so a higher revision never reflects less than a lower one.
 * Fails closed when the state would not fit in one agent message
 * (`maxBytes`, the gRPC limit less room for framing): the
 * network part then allows nothing and serves no metadata (logged as an
 * error), the instances stay (so the agent keeps them).
 */
export async function compileHostState(core: Pick<Core, "db" | "config" | "log">, hostId: string, maxBytes = AGENT_MAX_MESSAGE_BYTES - ENVELOPE_BYTES): Promise<agent.HostState> {
  return inTransaction(core.db, async (db) => {
    const { rows: [r] } = await db.query<{ revision: string }>(
      `INSERT INTO host_states (host_id, revision) VALUES ($1, 1)
       ON CONFLICT (host_id) DO UPDATE SET revision = host_states.revision + 1, compiled_at = now() RETURNING revision`,
      [hostId],
    );
    await db.query("DELETE FROM host_state_changes WHERE host_id = $1", [hostId]);
    const { rows } = await db.query<InstanceSpecRow>(`${instanceSpecSql()} WHERE i.host_id = $1 AND i.state <> 'terminated' ORDER BY i.id`, [hostId]);
    const instances = rows.map(instanceSpecOf);
    const state: agent.HostState = { revision: Number(r!.revision), instances, network: await hostNetworkState({ ...core, db }, hostId) };
    const bytes = agent.HostState.encode(state).finish().length;
    if (bytes <= maxBytes) return state;
    core.log.error({ hostId, bytes, limit: maxBytes }, "host state too large for one agent message: its network fails closed (no rules, no elastic IPs, no metadata)");
    const closed: agent.HostState = { ...state, network: { firewalls: instances.map((i) => ({ instanceId: i.instanceId, ingress: [], egress: [] })), elasticIps: [], metadata: [] } };
    if (agent.HostState.encode(closed).finish().length > maxBytes) {
      throw new Error(`host ${hostId} has more instances than one agent message can list`);
    }
    return closed;
  });
}
