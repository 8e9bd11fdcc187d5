import { createServer, request, type Server } from "node:http";
import type { agent } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metadataReply } from "../src/network/metadata/routes.js";
import { metadataHandler } from "../src/network/metadata/service.js";
import { parseTokenTtl, TokenIssuer } from "../src/network/metadata/tokens.js";
import { A, B, quietLogger } from "./helpers.js";

const md: agent.InstanceMetadata = {
  instanceId: A,
  amiId: "ami-0123456789abcdef0",
  instanceType: "t3.micro",
  availabilityZone: "lab-1a",
  region: "lab-1",
  localIpv4: "10.0.1.5",
  publicIpv4: "198.18.0.10",
  mac: "52:54:00:12:34:56",
  localHostname: "ip-10-0-1-5",
  reservationId: "r-0123456789abcdef0",
  securityGroups: ["default", "web"],
  publicKeys: [{ name: "alice", opensshKey: "ssh-ed25519 AAAAC3Nza alice@lab" }],
};
const USER_DATA = Buffer.from("#!/bin/sh\necho hi\n");

const body = (path: string, m = md, userData: Buffer | undefined = USER_DATA) => {
  const r = metadataReply(m, path, userData);
  return { status: r.status, body: r.body.toString() };
};

describe("metadataReply", () => {
  it("lists directories as EC2 does and serves each leaf", () => {
    expect(body("/latest/meta-data/").body).toBe(
      ["ami-id", "hostname", "instance-id", "instance-type", "local-hostname", "local-ipv4", "mac", "placement/", "public-ipv4", "public-keys/", "reservation-id", "security-groups"].join("\n"),
    );
    expect(body("/latest/meta-data/instance-id")).toEqual({ status: 200, body: A });
    expect(body("/latest/meta-data/ami-id").body).toBe("ami-0123456789abcdef0");
    expect(body("/latest/meta-data/instance-type").body).toBe("t3.micro");
    expect(body("/latest/meta-data/local-ipv4").body).toBe("10.0.1.5");
    expect(body("/latest/meta-data/public-ipv4").body).toBe("198.18.0.10");
    expect(body("/latest/meta-data/mac").body).toBe("52:54:00:12:34:56");
    expect(body("/latest/meta-data/hostname").body).toBe("ip-10-0-1-5");
    expect(body("/latest/meta-data/local-hostname").body).toBe("ip-10-0-1-5");
    expect(body("/latest/meta-data/reservation-id").body).toBe("r-0123456789abcdef0");
    expect(body("/latest/meta-data/security-groups").body).toBe("default\nweb");
    expect(body("/latest/meta-data/placement/").body).toBe("availability-zone\nregion");
    expect(body("/latest/meta-data/placement/availability-zone").body).toBe("lab-1a");
    expect(body("/latest/meta-data/placement/region").body).toBe("lab-1");
    expect(body("/latest/meta-data/public-keys/").body).toBe("0=alice");
    expect(body("/latest/meta-data/public-keys/0/").body).toBe("openssh-key");
    expect(body("/latest/meta-data/public-keys/0/openssh-key").body).toBe("ssh-ed25519 AAAAC3Nza alice@lab");
    expect(body("/latest/user-data")).toEqual({ status: 200, body: "#!/bin/sh\necho hi\n" });
    expect(metadataReply(md, "/latest/user-data", USER_DATA).contentType).toBe("application/octet-stream");
    expect(body("/latest/").body).toBe("dynamic/\nmeta-data/\nuser-data");
  });

  it("serves the identity document as JSON", () => {
    const doc = JSON.parse(body("/latest/dynamic/instance-identity/document").body) as Record<string, unknown>;
    expect(doc).toMatchObject({ instanceId: A, imageId: "ami-0123456789abcdef0", instanceType: "t3.micro", availabilityZone: "lab-1a", region: "lab-1", privateIp: "10.0.1.5", architecture: "x86_64" });
  });

  it("answers 404 for what the instance does not have and for unknown paths; accepts dated versions", () => {
    const bare = { ...md, publicIpv4: "", publicKeys: [] };
    expect(body("/latest/meta-data/public-ipv4", bare).status).toBe(404);
    expect(body("/latest/user-data", bare, Buffer.alloc(0)).status).toBe(404);
    expect(body("/latest/", bare, Buffer.alloc(0)).body).toBe("dynamic/\nmeta-data/");
    expect(body("/latest/meta-data/public-keys/", bare).status).toBe(404);
    expect(body("/latest/meta-data/", bare).body).not.toMatch(/public-ipv4|public-keys/);
    expect(body("/latest/meta-data/nope").status).toBe(404);
    expect(body("/latest/meta-data/instance-id/extra").status).toBe(404);
    expect(body("/latest/meta-data/../../etc/passwd").status).toBe(404);
    expect(body("/v2/meta-data/instance-id").status).toBe(404);
    expect(body("/2009-04-04/meta-data/instance-id")).toEqual({ status: 200, body: A });
    expect(body("/latest//meta-data//instance-id")).toEqual({ status: 200, body: A });
  });
});

describe("IMDSv2 tokens", () => {
  it("parses the TTL header: 1..21600 seconds only", () => {
    expect(parseTokenTtl("21600")).toBe(21600);
    expect(parseTokenTtl("1")).toBe(1);
    for (const bad of [undefined, "", "0", "21601", "-5", "1.5", "60s", "999999"]) expect(parseTokenTtl(bad), String(bad)).toBeUndefined();
  });

  it("verifies its own unexpired tokens for the instance they were issued to, and nothing else", () => {
    let now = 1_000_000;
    const issuer = new TokenIssuer(Buffer.alloc(32, 7), () => now);
    const token = issuer.issue(A, 60);
    expect(issuer.verify(token, A)).toBe(true);
    expect(issuer.verify(token, B)).toBe(false);
    expect(new TokenIssuer(Buffer.alloc(32, 8), () => now).verify(token, A)).toBe(false);
    const [payload, sig] = token.split(".");
    const forged = Buffer.from(`${A}.${now + 10 ** 9}`).toString("base64url");
    expect(issuer.verify(`${forged}.${sig}`, A)).toBe(false);
    expect(issuer.verify(`${payload}.${sig}x`, A)).toBe(false);
    expect(issuer.verify(`${payload}.${sig}.x`, A)).toBe(false);
    expect(issuer.verify("", A)).toBe(false);
    now += 60_000;
    expect(issuer.verify(token, A)).toBe(false);
  });
});

describe("metadata HTTP service (in process, caller identity injected)", () => {
  let server: Server;
  let port: number;
  /** Who the service thinks is calling; undefined = nobody it knows. */
  let caller: agent.InstanceMetadata | undefined = md;
  let v2Required = false;
  const identities: Array<[string, string]> = [];
  /** The instances whose user data the service asked the control plane for; it fails for B. */
  const userDataAsked: string[] = [];

  beforeAll(async () => {
    const handler = metadataHandler({
      identify: (local, remote) => {
        identities.push([local, remote]);
        return caller;
      },
      userData: async (id) => {
        userDataAsked.push(id);
        if (id === B) throw new Error("control plane unreachable");
        return USER_DATA;
      },
      get v2Required() {
        return v2Required;
      },
      tokens: new TokenIssuer(),
      log: quietLogger(),
    });
    server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  function call(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  const token = async (ttl = "60") => (await call("PUT", "/latest/api/token", { "x-aws-ec2-metadata-token-ttl-seconds": ttl })).body;

  it("identifies the caller by the connection's local and remote address", async () => {
    identities.length = 0;
    expect(await call("GET", "/latest/meta-data/instance-id")).toMatchObject({ status: 200, body: A });
    expect(identities).toEqual([["127.0.0.1", "127.0.0.1"]]);
  });

  it("fetches user data from the control plane only for the paths that show it, reuses it briefly, and answers 503 when it cannot be had", async () => {
    userDataAsked.length = 0;
    expect(await call("GET", "/latest/meta-data/instance-id")).toMatchObject({ status: 200, body: A });
    expect(userDataAsked).toEqual([]);
    expect(await call("GET", "/latest/user-data")).toMatchObject({ status: 200, body: USER_DATA.toString() });
    expect(await call("GET", "/latest/")).toMatchObject({ status: 200, body: "dynamic/\nmeta-data/\nuser-data" });
    expect(userDataAsked).toEqual([A]);
    caller = { ...md, instanceId: B };
    try {
      expect(await call("GET", "/latest/user-data")).toMatchObject({ status: 503 });
      expect(await call("GET", "/latest/meta-data/instance-id")).toMatchObject({ status: 200, body: B });
    } finally {
      caller = md;
    }
  });

  it("serves IMDSv1, and IMDSv2 with a valid token; 401 for a bad one", async () => {
    const t = await token();
    expect(t.length).toBeGreaterThan(20);
    expect(await call("GET", "/latest/meta-data/local-ipv4", { "x-aws-ec2-metadata-token": t })).toMatchObject({ status: 200, body: "10.0.1.5" });
    expect((await call("GET", "/latest/meta-data/local-ipv4", { "x-aws-ec2-metadata-token": `${t}x` })).status).toBe(401);
    expect((await call("HEAD", "/latest/meta-data/local-ipv4")).status).toBe(200);
  });

  it("does not accept one instance's token from another", async () => {
    const t = await token();
    caller = { ...md, instanceId: B };
    try {
      const r = await call("GET", "/latest/meta-data/instance-id", { "x-aws-ec2-metadata-token": t });
      expect(r.status).toBe(401);
      expect(r.body).not.toContain(A);
    } finally {
      caller = md;
    }
  });

  it("requires a token when IMDSv2 is required", async () => {
    v2Required = true;
    try {
      expect((await call("GET", "/latest/meta-data/instance-id")).status).toBe(401);
      expect((await call("GET", "/latest/meta-data/instance-id", { "x-aws-ec2-metadata-token": await token() })).body).toBe(A);
    } finally {
      v2Required = false;
    }
  });

  it("issues tokens only by PUT with a valid TTL and without X-Forwarded-For", async () => {
    const ok = await call("PUT", "/latest/api/token", { "x-aws-ec2-metadata-token-ttl-seconds": "21600" });
    expect(ok.headers["x-aws-ec2-metadata-token-ttl-seconds"]).toBe("21600");
    expect((await call("PUT", "/latest/api/token")).status).toBe(400);
    expect((await call("PUT", "/latest/api/token", { "x-aws-ec2-metadata-token-ttl-seconds": "21601" })).status).toBe(400);
    expect((await call("PUT", "/latest/api/token", { "x-aws-ec2-metadata-token-ttl-seconds": "60", "x-forwarded-for": "10.0.1.9" })).status).toBe(403);
    expect((await call("PUT", "/latest/meta-data/instance-id", { "x-aws-ec2-metadata-token-ttl-seconds": "60" })).status).toBe(404);
    expect((await call("POST", "/latest/meta-data/instance-id")).status).toBe(405);
  });

  it("tells an unknown caller nothing", async () => {
    caller = undefined;
    try {
      for (const [method, path] of [["GET", "/latest/meta-data/instance-id"], ["PUT", "/latest/api/token"], ["GET", "/latest/user-data"]] as const) {
        const r = await call(method, path, { "x-aws-ec2-metadata-token-ttl-seconds": "60" });
        expect(r.status).toBe(403);
        expect(r.body).toBe("Forbidden\n");
      }
    } finally {
      caller = md;
    }
  });
});
