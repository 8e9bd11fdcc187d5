// The elastic IP kind: AllocateAddress, AssociateAddress,
// DisassociateAddress, ReleaseAddress, DescribeAddresses,
// DescribeAddressesAttribute, over the operator's address pool.
import { cidrText, isIpv4, newId, nthAddress, parseExactCidr, size, type Cidr } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import type { PoolClient } from "pg";
import type { Core, RequestContext } from "../context.js";
import { analyzeAfterBulkChange } from "../db/statistics.js";
import { inTransaction } from "../db/tx.js";
import { describeKind, describeRows, findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { markHostsChanged } from "../hostState.js";
import { instanceKind } from "../instances/model.js";
import { defineOperation } from "../operation.js";
import { defineKind, type IdShape } from "../resource.js";
import { deleteTagsOf, insertTags, loadTags } from "../tags.js";
import { requireAttribute, requireIds, tagsFor, truncate } from "../validate.js";

interface AddressRow {
  id: string;
  owner_id: string;
  public_ip: string;
  association_id: string | null;
  instance_id: string | null;
  private_ip: string | null;
}

/** Association ids; EC2 answers NotFound for a malformed one. */
const associationId: IdShape = { idPrefix: "eipassoc", malformed: "InvalidAssociationID.NotFound" };

export const addressKind = defineKind<AddressRow, compute.Address>({
  name: "address",
  resourceType: "elastic-ip",
  idPrefix: "eipalloc",
  // EC2 answers NotFound for a malformed allocation id.
  malformed: "InvalidAllocationID.NotFound",
  table: "addresses",
  notFound: (m) => new Ec2Error("InvalidAllocationID.NotFound", `The allocation IDs '${m.join(", ")}' do not exist`),
  filters: {
    "allocation-id": "addresses.id", "association-id": "addresses.association_id", "instance-id": "addresses.instance_id",
    "public-ip": "host(addresses.public_ip)", "private-ip-address": "host(addresses.private_ip)", domain: "'vpc'",
  },
  toApi: async (ctx, rows) => {
    const tags = await loadTags(ctx.db, rows.map((r) => r.id));
    return rows.map((a) => ({
      PublicIp: a.public_ip.replace(/\/32$/, ""), AllocationId: a.id, AssociationId: a.association_id ?? "", Domain: "vpc",
      InstanceId: a.instance_id ?? "", PrivateIpAddress: (a.private_ip ?? "").replace(/\/32$/, ""), NetworkBorderGroup: ctx.config.CIRRUS_REGION,
      PublicIpv4Pool: "cirrus", Tags: tags.get(a.id) ?? [],
    }));
  },
});

/**
 * The addresses of a pool block that can be handed out: all but the
 * network and broadcast addresses, except in a /31 or /32 (point-to-point
 * and single addresses have neither). [first, last] as offsets in the block.
 */
function usableOffsets(c: Cidr): [number, number] {
  return c.prefix >= 31 ? [0, size(c) - 1] : [1, size(c) - 2];
}

/**
 * Adds every usable address of CIRRUS_ADDRESS_POOL to the pool table
 * (addresses already there are kept), and takes out of the pool the
 * network and broadcast addresses of its blocks that earlier versions put
 * in, unless one is allocated (then it is logged and left to its owner).
 */
export async function syncAddressPool(core: Core): Promise<void> {
  const blocks = core.config.CIRRUS_ADDRESS_POOL.split(",").map((c) => c.trim()).filter(Boolean).map((text) => {
    const c = parseExactCidr(text);
    if (!c || c.prefix < 15) throw new Error(`CIRRUS_ADDRESS_POOL: ${JSON.stringify(text)} is not a CIDR block of /15 to /32 without host bits`);
    return c;
  });
  for (const c of blocks) {
    const [first, last] = usableOffsets(c);
    if (first > 0) {
      const edges = [nthAddress(c, 0), nthAddress(c, size(c) - 1)];
      await core.db.query("DELETE FROM address_pool WHERE ip = ANY($1::inet[]) AND allocation_id IS NULL", [edges]);
      const { rows: held } = await core.db.query<{ ip: string }>("SELECT host(ip) AS ip FROM address_pool WHERE ip = ANY($1::inet[])", [edges]);
      for (const { ip } of held) core.log.warn({ ip, block: cidrText(c) }, "an allocated elastic IP is the network or broadcast address of its pool block; release it");
    }
    // Start-up cost: only insert when some usable address of the range is missing.
    const { rows: [have] } = await core.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM address_pool WHERE ip BETWEEN $1::inet AND $2::inet", [nthAddress(c, first), nthAddress(c, last)],
    );
    if (Number(have!.n) >= last - first + 1) continue;
    await core.db.query(
      "INSERT INTO address_pool (ip) SELECT host(network($1::cidr) + n)::inet FROM generate_series($2::bigint, $3::bigint) AS n ON CONFLICT DO NOTHING",
      [cidrText(c), first, last],
    );
    // Statistics for the new rows, or allocations are planned as a sort of the whole pool.
    await analyzeAfterBulkChange(core, last - first + 1, ["address_pool"]);
  }
}

async function allocateAddress(ctx: RequestContext, req: compute.AllocateAddressRequest): Promise<compute.AllocateAddressResponse> {
  if (req.Domain && req.Domain !== "vpc") throw new Ec2Error("InvalidParameterValue", `Value (${truncate(req.Domain)}) for parameter domain is invalid. Only 'vpc' is supported.`);
  if (req.PublicIpv4Pool && req.PublicIpv4Pool !== "cirrus") throw new Ec2Error("InvalidParameterValue", `Unknown public IPv4 pool: ${truncate(req.PublicIpv4Pool)}`);
  if (req.Address && !isIpv4(req.Address)) throw new Ec2Error("InvalidParameterValue", `Invalid address: ${truncate(req.Address)}`);
  const tags = tagsFor("elastic-ip", req.TagSpecifications, ["elastic-ip"]);
  const id = newId("eipalloc");
  const ip = await inTransaction(ctx.db, async (db) => {
    // SKIP LOCKED: concurrent allocations each take a different free row without waiting.
    const { rows: [claimed] } = req.Address
      ? await db.query<{ ip: string }>("UPDATE address_pool SET allocation_id = $1 WHERE ip = $2 AND allocation_id IS NULL RETURNING host(ip) AS ip", [id, req.Address])
      : await db.query<{ ip: string }>(
        `UPDATE address_pool SET allocation_id = $1
          WHERE ip = (SELECT ip FROM address_pool WHERE allocation_id IS NULL ORDER BY ip LIMIT 1 FOR UPDATE SKIP LOCKED)
          RETURNING host(ip) AS ip`,
        [id],
      );
    if (!claimed && req.Address) {
      const { rows: [inPool] } = await db.query("SELECT 1 FROM address_pool WHERE ip = $1", [req.Address]);
      throw inPool
        ? new Ec2Error("InvalidIPAddress.InUse", `Address ${req.Address} is already allocated`)
        : new Ec2Error("InvalidAddress.NotFound", `Address ${req.Address} is not in the address pool`);
    }
    if (!claimed) {
      const { rows: [any] } = await db.query("SELECT 1 FROM address_pool LIMIT 1");
      throw new Ec2Error("AddressLimitExceeded", any
        ? "The maximum number of addresses has been reached: the address pool is exhausted."
        : "No elastic IP address pool is configured on this cloud (the operator sets CIRRUS_ADDRESS_POOL).");
    }
    await db.query("INSERT INTO addresses (id, owner_id, public_ip) VALUES ($1, $2, $3)", [id, ctx.principal.accountId, claimed.ip]);
    await insertTags(db, ctx.principal.accountId, addressKind.resourceType, [id], tags);
    return claimed.ip;
  });
  return { PublicIp: ip, AllocationId: id, Domain: "vpc", PublicIpv4Pool: "cirrus", NetworkBorderGroup: ctx.config.CIRRUS_REGION };
}

async function lockAddress(db: PoolClient, ctx: RequestContext, allocationId: string): Promise<AddressRow> {
  if (!allocationId) throw new Ec2Error("MissingParameter", "The request must contain the parameter AllocationId");
  requireIds(addressKind, [allocationId]);
  const { rows: [a] } = await db.query<AddressRow>(
    "SELECT id, owner_id, host(public_ip) AS public_ip, association_id, instance_id, host(private_ip) AS private_ip FROM addresses WHERE id = $1 AND owner_id = $2 FOR UPDATE",
    [allocationId, ctx.principal.accountId],
  );
  if (!a) throw new Ec2Error("InvalidAllocationID.NotFound", `The allocation ID '${allocationId}' does not exist`);
  return a;
}

async function hostOf(db: PoolClient, instanceId: string | null): Promise<string[]> {
  if (!instanceId) return [];
  const { rows } = await db.query<{ host_id: string }>("SELECT host_id FROM instances WHERE id = $1 AND host_id IS NOT NULL", [instanceId]);
  return rows.map((r) => r.host_id);
}

async function associateAddress(ctx: RequestContext, req: compute.AssociateAddressRequest): Promise<compute.AssociateAddressResponse> {
  if (!req.InstanceId && !req.PrivateIpAddress) throw new Ec2Error("MissingParameter", "Either InstanceId or PrivateIpAddress must be given");
  if (req.PrivateIpAddress && !isIpv4(req.PrivateIpAddress)) throw new Ec2Error("InvalidParameterValue", `Invalid private address: ${truncate(req.PrivateIpAddress)}`);
  if (req.InstanceId) await findOwned(ctx, ctx.db, instanceKind, [req.InstanceId]);
  const association = newId("eipassoc");
  const hosts = await inTransaction(ctx.db, async (db) => {
    const addr = await lockAddress(db, ctx, req.AllocationId);
    const { rows: [target] } = await db.query<{ id: string; private_ip: string | null; state: string; host_id: string }>(
      req.InstanceId
        ? "SELECT id, host(private_ip) AS private_ip, state, host_id FROM instances WHERE id = $1 AND owner_id = $2 FOR UPDATE"
        : "SELECT id, host(private_ip) AS private_ip, state, host_id FROM instances WHERE private_ip = $1::inet AND owner_id = $2 AND state <> 'terminated' FOR UPDATE",
      [req.InstanceId || req.PrivateIpAddress, ctx.principal.accountId],
    );
    if (!target) throw new Ec2Error("InvalidParameterValue", `No instance has the private address ${truncate(req.PrivateIpAddress)}`);
    if (target.state === "terminated" || target.state === "shutting-down") throw new Ec2Error("IncorrectInstanceState", `The instance '${target.id}' is not in a valid state for this operation.`);
    if (!target.private_ip) throw new Ec2Error("InvalidInstanceID", `The instance '${target.id}' has no private address in a VPC`);
    if (req.PrivateIpAddress && req.PrivateIpAddress !== target.private_ip) {
      throw new Ec2Error("InvalidParameterValue", `The address ${req.PrivateIpAddress} is not a private address of instance '${target.id}'`);
    }
    if (addr.association_id && !req.AllowReassociation && addr.instance_id !== target.id) {
      throw new Ec2Error("Resource.AlreadyAssociated", `resource ${addr.id} is already associated with associate-id ${addr.association_id}`);
    }
    // One elastic IP per instance (its one private address): associating another one replaces it.
    // Keyed on the instance, not the address: other accounts' VPCs reuse the same private ranges.
    const { rows: replaced } = await db.query<{ id: string }>(
      "UPDATE addresses SET association_id = NULL, instance_id = NULL, private_ip = NULL WHERE instance_id = $1 AND id <> $2 RETURNING id",
      [target.id, addr.id],
    );
    await db.query("UPDATE addresses SET association_id = $2, instance_id = $3, private_ip = $4 WHERE id = $1", [addr.id, association, target.id, target.private_ip]);
    ctx.log.info({ allocationId: addr.id, instanceId: target.id, replaced: replaced.map((r) => r.id) }, "address associated");
    return markHostsChanged(db, [...(await hostOf(db, addr.instance_id)), target.host_id]);
  });
  ctx.notifyHosts(hosts);
  return { AssociationId: association };
}

async function disassociateAddress(ctx: RequestContext, req: compute.DisassociateAddressRequest): Promise<compute.DisassociateAddressResponse> {
  if (!req.AssociationId) throw new Ec2Error("MissingParameter", "The request must contain the parameter AssociationId");
  requireIds(associationId, [req.AssociationId]);
  const hosts = await inTransaction(ctx.db, async (db) => {
    const { rows: [a] } = await db.query<{ instance_id: string | null }>(
      "SELECT instance_id FROM addresses WHERE association_id = $1 AND owner_id = $2 FOR UPDATE", [req.AssociationId, ctx.principal.accountId]);
    if (!a) throw new Ec2Error("InvalidAssociationID.NotFound", `The association ID '${req.AssociationId}' does not exist`);
    await db.query("UPDATE addresses SET association_id = NULL, instance_id = NULL, private_ip = NULL WHERE association_id = $1", [req.AssociationId]);
    return markHostsChanged(db, await hostOf(db, a.instance_id));
  });
  ctx.notifyHosts(hosts);
  return {};
}

async function releaseAddress(ctx: RequestContext, req: compute.ReleaseAddressRequest): Promise<compute.ReleaseAddressResponse> {
  await inTransaction(ctx.db, async (db) => {
    const addr = await lockAddress(db, ctx, req.AllocationId);
    if (addr.association_id) throw new Ec2Error("InvalidIPAddress.InUse", `Address ${addr.public_ip} is in use (associated with ${addr.association_id})`);
    await db.query("DELETE FROM addresses WHERE id = $1", [addr.id]);
    await db.query("UPDATE address_pool SET allocation_id = NULL WHERE allocation_id = $1", [addr.id]);
    await deleteTagsOf(db, [addr.id]);
  });
  return {};
}

async function describeAddresses(ctx: RequestContext, req: compute.DescribeAddressesRequest): Promise<compute.DescribeAddressesResponse> {
  for (const ip of req.PublicIps) if (!isIpv4(ip)) throw new Ec2Error("InvalidParameterValue", `Invalid address: ${truncate(ip)}`);
  const params: unknown[] = [];
  const where = req.PublicIps.length ? [`addresses.public_ip = ANY($${params.push(req.PublicIps)}::inet[])`] : [];
  const page = await describeKind(ctx, addressKind, { ids: req.AllocationIds, filters: req.Filters, where, params, unpaged: true });
  if (req.PublicIps.length && page.items.length < req.PublicIps.length) {
    throw new Ec2Error("InvalidAddress.NotFound", `Address '${req.PublicIps.join(", ")}' not found.`);
  }
  return { Addresses: page.items };
}

/**
 * DescribeAddressesAttribute: the domain-name attribute of the named
 * addresses (none named: all of the caller's), in allocation id order. Cirrus
 * sets no reverse DNS record, so each answers its address without a PtrRecord.
 */
async function describeAddressesAttribute(ctx: RequestContext, req: compute.DescribeAddressesAttributeRequest): Promise<compute.DescribeAddressesAttributeResponse> {
  // The model makes Attribute optional; domain-name is its only value.
  if (req.Attribute) requireAttribute(req.Attribute, ["domain-name"]);
  const page = await describeRows(ctx, addressKind, { ids: req.AllocationIds, filters: [], maxResults: req.MaxResults, nextToken: req.NextToken });
  return { Addresses: page.rows.map((a) => ({ PublicIp: a.public_ip.replace(/\/32$/, ""), AllocationId: a.id })), NextToken: page.nextToken };
}

export const addressOperations = [
  defineOperation({
    name: "AllocateAddress",
    summary: "Allocate an elastic IP address from the pool",
    request: compute.AllocateAddressRequest,
    response: compute.AllocateAddressResponse,
    mutates: true,
    kinds: ["address"],
    handler: allocateAddress,
  }),
  defineOperation({
    name: "AssociateAddress",
    summary: "Associate an elastic IP with an instance (or one of its private addresses)",
    request: compute.AssociateAddressRequest,
    response: compute.AssociateAddressResponse,
    mutates: true,
    kinds: ["address", "instance"],
    handler: associateAddress,
  }),
  defineOperation({
    name: "DisassociateAddress",
    summary: "Disassociate an elastic IP from its instance",
    request: compute.DisassociateAddressRequest,
    response: compute.DisassociateAddressResponse,
    mutates: true,
    kinds: ["address"],
    handler: disassociateAddress,
  }),
  defineOperation({
    name: "ReleaseAddress",
    summary: "Release an elastic IP back to the pool",
    request: compute.ReleaseAddressRequest,
    response: compute.ReleaseAddressResponse,
    mutates: true,
    kinds: ["address"],
    handler: releaseAddress,
  }),
  defineOperation({
    name: "DescribeAddresses",
    summary: "Describe elastic IP addresses",
    request: compute.DescribeAddressesRequest,
    response: compute.DescribeAddressesResponse,
    mutates: false,
    kinds: ["address"],
    handler: describeAddresses,
  }),
  defineOperation({
    name: "DescribeAddressesAttribute",
    summary: "Describe the domain-name attribute (reverse DNS) of elastic IPs",
    request: compute.DescribeAddressesAttributeRequest,
    response: compute.DescribeAddressesAttributeResponse,
    mutates: false,
    kinds: ["address"],
    handler: describeAddressesAttribute,
  }),
];
