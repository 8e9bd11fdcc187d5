// The cluster CA as the control plane keeps it: in Postgres, so that every
// API and worker process signs with the same one. Whoever holds the database
// can mint certificates, as they can already read every host's secret.
import { createCa, type Credential } from "@cirrus/common";
import type { Queryable } from "./db/tx.js";

/** The cluster CA; made once, by whichever process asks first (the others read that one). */
export async function clusterCa(db: Queryable): Promise<Credential> {
  const read = async () => (await db.query<{ cert_pem: string; key_pem: string }>("SELECT cert_pem, key_pem FROM cluster_ca WHERE id = 1")).rows[0];
  let row = await read();
  if (!row) {
    const ca = await createCa();
    await db.query("INSERT INTO cluster_ca (id, cert_pem, key_pem) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING", [ca.certPem, ca.keyPem]);
    row = (await read())!;
  }
  return { certPem: row.cert_pem, keyPem: row.key_pem };
}
