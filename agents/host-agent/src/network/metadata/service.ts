// The instance metadata service: HTTP on each bridge's gateway address,
// reached by guests at 169.254.169.254:80 through a DNAT rule. The caller is
// identified by the address it reached (which bridge) and its source address
// (which instance there); the firewall's INPUT rules only let a guest reach
// the service from its own tap with its own address, so the source address
// can be trusted. A caller that is not an instance gets 403 and nothing else.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "@cirrus/common";
import type { agent } from "@cirrus/proto";
import { metadataReply, needsUserData, type MetadataReply } from "./routes.js";
import { parseTokenTtl, type TokenIssuer } from "./tokens.js";

export interface MetadataServiceOptions {
  /** The metadata of the instance at `remoteAddress` on the bridge whose gateway is `localAddress`, if any. */
  identify(localAddress: string, remoteAddress: string): agent.InstanceMetadata | undefined;
  /** The instance's user data, from the control plane (it is not in the host state); rejects when it cannot be had. */
  userData(instanceId: string): Promise<Buffer>;
  /** Refuse IMDSv1 (requests without a session token). */
  v2Required: boolean;
  tokens: TokenIssuer;
  log: Logger;
}

const TOKEN_PATH = "/latest/api/token";
const TOKEN_HEADER = "x-aws-ec2-metadata-token";
const TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds";

const plain = (status: number, body: string): MetadataReply => ({ status, contentType: "text/plain", body: `${body}\n` });

/** "::ffff:10.0.0.5" (an IPv4 peer seen by a dual-stack socket) → "10.0.0.5". */
function ipv4Of(address: string | undefined): string {
  return (address ?? "").replace(/^::ffff:/, "");
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The request's path, query removed and repeated slashes collapsed. */
const pathOf = (req: IncomingMessage) => (req.url ?? "/").split("?")[0]!.replace(/\/{2,}/g, "/");

/** Pure apart from token issuing: what to answer to `req` from `md`'s instance (whose user data is `userData`, when the path needs it). */
function answer(opts: MetadataServiceOptions, req: IncomingMessage, md: agent.InstanceMetadata | undefined, userData: Buffer | undefined): MetadataReply & { headers?: Record<string, string> } {
  if (!md) return plain(403, "Forbidden");
  const path = pathOf(req);
  if (req.method === "PUT") {
    if (path !== TOKEN_PATH) return plain(404, "Not Found");
    // As EC2: a request relayed by a proxy on the instance must not get a token.
    if (header(req, "x-forwarded-for") !== undefined) return plain(403, "Forbidden");
    const ttl = parseTokenTtl(header(req, TTL_HEADER));
    if (ttl === undefined) return plain(400, "Bad Request");
    return { status: 200, contentType: "text/plain", body: opts.tokens.issue(md.instanceId, ttl), headers: { [TTL_HEADER]: String(ttl) } };
  }
  if (req.method !== "GET" && req.method !== "HEAD") return { ...plain(405, "Method Not Allowed"), headers: { allow: "GET, HEAD, PUT" } };
  const token = header(req, TOKEN_HEADER);
  if (token !== undefined ? !opts.tokens.verify(token, md.instanceId) : opts.v2Required) return plain(401, "Unauthorized");
  return metadataReply(md, path, userData);
}

/** How long fetched user data is reused: cloud-init reads it several times while booting. */
const USER_DATA_TTL_MS = 10_000;

/** The request handler, for a node:http server whose sockets' local address is a gateway. */
export function metadataHandler(opts: MetadataServiceOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const cache = new Map<string, { data: Buffer; at: number }>();
  const userData = async (instanceId: string): Promise<Buffer> => {
    const hit = cache.get(instanceId);
    if (hit && Date.now() - hit.at < USER_DATA_TTL_MS) return hit.data;
    const data = await opts.userData(instanceId);
    cache.set(instanceId, { data, at: Date.now() });
    return data;
  };
  return (req, res) => void (async () => {
    const local = ipv4Of(req.socket.localAddress);
    const remote = ipv4Of(req.socket.remoteAddress);
    const md = opts.identify(local, remote);
    let data: Buffer | undefined;
    if (md && req.method !== "PUT" && needsUserData(pathOf(req))) {
      try {
        data = await userData(md.instanceId);
      } catch (err) {
        opts.log.warn({ instanceId: md.instanceId, err: String(err) }, "user data unavailable from the control plane");
        const reply = plain(503, "Service Unavailable");
        res.writeHead(reply.status, { "content-type": reply.contentType, "content-length": Buffer.byteLength(reply.body) });
        return void res.end(reply.body);
      }
    }
    const reply = answer(opts, req, md, data);
    if (reply.status >= 400) opts.log.debug({ instanceId: md?.instanceId, local, remote, method: req.method, url: req.url?.slice(0, 200), status: reply.status }, "metadata request refused");
    res.writeHead(reply.status, { "content-type": reply.contentType, "content-length": Buffer.byteLength(reply.body), ...reply.headers });
    res.end(req.method === "HEAD" ? undefined : reply.body);
  })();
}

/** One HTTP listener per gateway address, all serving the same handler. */
export class MetadataListeners {
  private readonly servers = new Map<string, Server>();

  constructor(
    private readonly handler: (req: IncomingMessage, res: ServerResponse) => void,
    private readonly port: number,
  ) {}

  /**
   * Postcondition: a listener on address:port for each of `addresses` and on
   * no other. Tries every address; throws afterwards naming those that
   * failed (the gateway address not yet on its bridge, port taken).
   */
  async sync(addresses: readonly string[]): Promise<void> {
    const wanted = new Set(addresses);
    await Promise.all([...this.servers.keys()].filter((a) => !wanted.has(a)).map((a) => this.stop(a)));
    const failures: string[] = [];
    for (const address of wanted) {
      if (this.servers.has(address)) continue;
      const server = createServer(this.handler);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: address, port: this.port }, () => {
            server.off("error", reject);
            resolve();
          });
        });
        this.servers.set(address, server);
      } catch (err) {
        failures.push(`${address}:${this.port}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (failures.length > 0) throw new Error(`metadata service cannot listen on ${failures.join("; ")}`);
  }

  /** The addresses listened on. */
  get addresses(): string[] {
    return [...this.servers.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.keys()].map((a) => this.stop(a)));
  }

  private async stop(address: string): Promise<void> {
    const server = this.servers.get(address);
    this.servers.delete(address);
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
