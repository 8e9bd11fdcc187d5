// The network state of one host, as the agent applies it: per-instance
// firewalls compiled from security groups (rules naming a source group are
// resolved to its members' addresses), elastic-IP mappings, and what the
// metadata service tells each instance.
import { macFor } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import type { Core } from "../context.js";
import type { Queryable } from "../db/tx.js";

interface NetInstance {
  id: string;
  ip: string;
  image_id: string;
  instance_type: string;
  availability_zone: string;
  reservation_id: string;
  key_name: string;
  public_key: string;
}

interface Rule {
  group_id: string;
  is_egress: boolean;
  protocol: string;
  from_port: number;
  to_port: number;
  cidr: string | null;
  source_group_id: string | null;
}

function groupBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const list = out.get(key(r));
    if (list) list.push(r);
    else out.set(key(r), [r]);
  }
  return out;
}

/** The network state of one host, compiled from Postgres. */
export async function hostNetworkState(core: Pick<Core, "config" | "log"> & { db: Queryable }, hostId: string): Promise<agent.HostNetworkState> {
  const { db, config, log } = core;
  const { rows: instances } = await db.query<NetInstance>(
    `SELECT id, host(private_ip) AS ip, image_id, instance_type, availability_zone, reservation_id, key_name, public_key
       FROM instances WHERE host_id = $1 AND state <> 'terminated' AND private_ip IS NOT NULL ORDER BY id`,
    [hostId],
  );
  const ids = instances.map((i) => i.id);
  const { rows: memberships } = await db.query<{ instance_id: string; group_id: string; name: string }>(
    "SELECT m.instance_id, m.group_id, g.name FROM instance_security_groups m JOIN security_groups g ON g.id = m.group_id WHERE m.instance_id = ANY($1)",
    [ids],
  );
  const { rows: rules } = await db.query<Rule>(
    "SELECT group_id, is_egress, protocol, from_port, to_port, host(cidr) || '/' || masklen(cidr) AS cidr, source_group_id FROM security_group_rules WHERE group_id = ANY($1) ORDER BY id",
    [[...new Set(memberships.map((m) => m.group_id))]],
  );
  // How many (instance, rule) pairs name each source group: a group with n
  // members adds n entries per pair. Each group's members are read only up
  // to the count that would pass CIRRUS_MAX_GROUP_ENTRIES_PER_HOST, so a host
  // past it (a large default group) is found without reading every member.
  const limit = config.CIRRUS_MAX_GROUP_ENTRIES_PER_HOST;
  const rulesOf = groupBy(rules, (r) => r.group_id);
  const pairsNaming = new Map<string, number>();
  for (const m of memberships) {
    for (const r of rulesOf.get(m.group_id) ?? []) if (r.source_group_id) pairsNaming.set(r.source_group_id, (pairsNaming.get(r.source_group_id) ?? 0) + 1);
  }
  const { rows: sourceMembers } = await db.query<{ group_id: string; ip: string }>(
    `SELECT g.id AS group_id, s.ip FROM unnest($1::text[], $2::int[]) AS g(id, most)
       CROSS JOIN LATERAL (SELECT host(i.private_ip) AS ip FROM instance_security_groups m JOIN instances i ON i.id = m.instance_id
                            WHERE m.group_id = g.id AND i.state <> 'terminated' AND i.private_ip IS NOT NULL LIMIT g.most) s`,
    [[...pairsNaming.keys()], [...pairsNaming.values()].map((pairs) => Math.floor(limit / pairs) + 1)],
  );
  const { rows: eips } = await db.query<{ public_ip: string; private_ip: string; instance_id: string }>(
    "SELECT host(public_ip) AS public_ip, host(private_ip) AS private_ip, instance_id FROM addresses WHERE instance_id = ANY($1) ORDER BY public_ip",
    [ids],
  );
  const groupsOf = groupBy(memberships, (m) => m.instance_id);
  const membersOf = groupBy(sourceMembers, (m) => m.group_id);
  const publicOf = new Map(eips.map((e) => [e.instance_id, e.public_ip]));

  // One compiled rule per rule row, shared by every instance it applies to.
  const compiled = new Map<Rule, agent.FirewallRule | undefined>();
  const groupEntries = [...pairsNaming].reduce((sum, [groupId, pairs]) => sum + pairs * (membersOf.get(groupId)?.length ?? 0), 0);
  // See CIRRUS_MAX_GROUP_ENTRIES_PER_HOST: fail closed rather than run out of memory.
  const expandGroups = groupEntries <= limit;
  if (!expandGroups) log.error({ hostId, limit }, "too many group-sourced firewall entries on this host: group-sourced rules left out (fail closed)");
  const compile = (r: Rule): agent.FirewallRule | undefined => {
    if (compiled.has(r)) return compiled.get(r);
    const cidrs = r.cidr ? [r.cidr] : expandGroups ? (membersOf.get(r.source_group_id!) ?? []).map((m) => `${m.ip}/32`) : [];
    const rule = cidrs.length ? { protocol: r.protocol === "-1" ? "all" : r.protocol, fromPort: r.from_port, toPort: r.to_port, cidrs } : undefined;
    compiled.set(r, rule);
    return rule;
  };
  return {
    firewalls: instances.map((i) => {
      const own = (groupsOf.get(i.id) ?? []).flatMap((m) => rulesOf.get(m.group_id) ?? []);
      return {
        instanceId: i.id,
        ingress: own.filter((r) => !r.is_egress).map(compile).filter((r) => r !== undefined),
        egress: own.filter((r) => r.is_egress).map(compile).filter((r) => r !== undefined),
      };
    }),
    elasticIps: eips.map((e) => ({ publicIp: e.public_ip, privateIp: e.private_ip, instanceId: e.instance_id })),
    metadata: instances.map((i) => ({
      instanceId: i.id, amiId: i.image_id, instanceType: i.instance_type, availabilityZone: i.availability_zone, region: config.CIRRUS_REGION,
      localIpv4: i.ip, publicIpv4: publicOf.get(i.id) ?? "", mac: macFor(i.ip), localHostname: `ip-${i.ip.replaceAll(".", "-")}.${config.CIRRUS_REGION}.compute.internal`,
      reservationId: i.reservation_id, securityGroups: (groupsOf.get(i.id) ?? []).map((m) => m.name),
      publicKeys: i.key_name ? [{ name: i.key_name, opensshKey: i.public_key }] : [],
    })),
  };
}
