// Which hosts a change concerns. A host's network state holds, for each of
// its instances, the rules of the instance's groups, with every rule that
// names a source group expanded to that group's members' addresses. So:
//   - a rule change in group G concerns the hosts running members of G;
//   - a membership change (launch, terminate, new groups) of instances in
//     groups Gs concerns their own hosts and the hosts running members of any
//     group with a rule naming one of Gs as its source.
import type { Queryable } from "../db/tx.js";

/** Hosts running (non-terminated) members of these groups. */
export async function hostsWithMembers(db: Queryable, groupIds: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ host_id: string }>(
    `SELECT DISTINCT i.host_id FROM instance_security_groups m JOIN instances i ON i.id = m.instance_id
      WHERE m.group_id = ANY($1) AND i.state <> 'terminated' AND i.host_id IS NOT NULL`,
    [groupIds],
  );
  return rows.map((r) => r.host_id);
}

/** SQL: the hosts running members of any group with a rule whose source is one of `sourceGroups` (a subquery). */
const namingHostsSql = (sourceGroups: string) => `
  SELECT i.host_id FROM security_group_rules r
    JOIN instance_security_groups m ON m.group_id = r.group_id
    JOIN instances i ON i.id = m.instance_id
   WHERE r.source_group_id IN (${sourceGroups}) AND i.state <> 'terminated' AND i.host_id IS NOT NULL`;

/** The hosts running members of any group with a rule naming one of these groups as its source. */
export async function hostsNamingGroups(db: Queryable, groupIds: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ host_id: string }>(`SELECT DISTINCT host_id FROM (${namingHostsSql("SELECT unnest($1::text[])")}) h`, [groupIds]);
  return rows.map((r) => r.host_id);
}

/** The hosts a membership change of these instances concerns (see the header): own hosts and those whose rules name their groups. */
export async function hostsConcernedByMembers(db: Queryable, instanceIds: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ host_id: string }>(
    `SELECT host_id FROM instances WHERE id = ANY($1) AND host_id IS NOT NULL
     UNION ${namingHostsSql("SELECT group_id FROM instance_security_groups WHERE instance_id = ANY($1)")}`,
    [instanceIds],
  );
  return rows.map((r) => r.host_id);
}
