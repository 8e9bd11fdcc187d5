// Pure: an instance's metadata and a request path → the EC2 instance
// metadata service's answer. The tree mirrors EC2's: directories list their
// entries one per line (subdirectories with a trailing "/"), leaves return
// their value; any version segment ("latest", "2009-04-04", …) serves the
// same tree, as cloud-init probes dated versions.
import type { agent } from "@cirrus/proto";

export interface MetadataReply {
  status: number;
  contentType: string;
  body: string | Buffer;
}

interface Dir {
  /** Path segment → entry; `label` is how the parent listing shows it. */
  entries: Map<string, { label: string; node: Node }>;
}
type Node = string | Buffer | Dir;

const isDir = (n: Node): n is Dir => typeof n === "object" && !Buffer.isBuffer(n);

/** A directory of the given entries, leaving out empty values; labelled as EC2 does. */
function dir(entries: Record<string, Node | undefined>): Dir {
  const d: Dir = { entries: new Map() };
  for (const name of Object.keys(entries).sort()) {
    const node = entries[name];
    if (node === undefined || node === "" || (Buffer.isBuffer(node) && node.length === 0)) continue;
    d.entries.set(name, { label: isDir(node) ? `${name}/` : name, node });
  }
  return d;
}

function publicKeys(keys: readonly agent.PublicKey[]): Dir | undefined {
  if (keys.length === 0) return undefined;
  const d: Dir = { entries: new Map() };
  // EC2 lists "0=name" and serves the key under "0/openssh-key".
  keys.forEach((k, i) => d.entries.set(String(i), { label: `${i}=${k.name}`, node: dir({ "openssh-key": k.opensshKey }) }));
  return d;
}

/** The instance identity document, with the fields Cirrus knows and EC2's nulls for the rest. */
export function identityDocument(md: agent.InstanceMetadata): string {
  return JSON.stringify(
    {
      accountId: null,
      architecture: "x86_64",
      availabilityZone: md.availabilityZone,
      billingProducts: null,
      devpayProductCodes: null,
      marketplaceProductCodes: null,
      imageId: md.amiId,
      instanceId: md.instanceId,
      instanceType: md.instanceType,
      kernelId: null,
      pendingTime: null,
      privateIp: md.localIpv4,
      ramdiskId: null,
      region: md.region,
      version: "2017-09-30",
    },
    null,
    2,
  );
}

function tree(md: agent.InstanceMetadata, userData: Buffer | undefined): Dir {
  const metaData = dir({
    "ami-id": md.amiId,
    hostname: md.localHostname,
    "instance-id": md.instanceId,
    "instance-type": md.instanceType,
    "local-hostname": md.localHostname,
    "local-ipv4": md.localIpv4,
    mac: md.mac,
    placement: dir({ "availability-zone": md.availabilityZone, region: md.region }),
    "public-ipv4": md.publicIpv4,
    "public-keys": publicKeys(md.publicKeys),
    "reservation-id": md.reservationId,
    "security-groups": md.securityGroups.join("\n"),
  });
  return dir({
    dynamic: dir({ "instance-identity": dir({ document: identityDocument(md) }) }),
    "meta-data": metaData,
    "user-data": userData,
  });
}

const VERSION = /^(?:latest|1\.0|\d{4}-\d{2}-\d{2})$/;

const text = (status: number, body: string): MetadataReply => ({ status, contentType: "text/plain", body });
const NOT_FOUND = text(404, "Not Found\n");

/** True for the paths whose answer depends on the user data: the version root (which lists it when there is some) and the user data itself. */
export function needsUserData(path: string): boolean {
  const segments = path.split("/").filter((s) => s.length > 0);
  return segments.length >= 1 && segments.length <= 2 && VERSION.test(segments[0]!) && (segments.length === 1 || segments[1] === "user-data");
}

/**
 * Postcondition: the reply is built from `md` and `userData` alone (absent
 * or empty: the instance has none). `path` is the URL path (query already
 * removed); repeated slashes are ignored, as EC2 does.
 */
export function metadataReply(md: agent.InstanceMetadata, path: string, userData?: Buffer): MetadataReply {
  const segments = path.split("/").filter((s) => s.length > 0);
  if (segments.length === 0) return text(200, "latest");
  if (!VERSION.test(segments[0]!)) return NOT_FOUND;
  let node: Node = tree(md, userData);
  for (const seg of segments.slice(1)) {
    if (!isDir(node)) return NOT_FOUND;
    const entry = node.entries.get(seg);
    if (!entry) return NOT_FOUND;
    node = entry.node;
  }
  if (isDir(node)) return text(200, [...node.entries.values()].map((e) => e.label).join("\n"));
  if (Buffer.isBuffer(node)) return { status: 200, contentType: "application/octet-stream", body: node };
  return text(200, node);
}
