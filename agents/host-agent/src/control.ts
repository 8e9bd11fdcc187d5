// The agent's side of HostControl: registration (enrolment token the first
// time, the stored host secret afterwards) and heartbeats, over TLS to a
// control plane whose certificate chains to the cluster CA. Registration
// sends a request for the agent's certificate (its key is made here once and
// never leaves the state directory); the certificate it gets back is the
// client certificate of every later call and the HostAgent server's.
import { createPublicKey } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { agentChannelOptions, bearerMetadata, callUnary, clusterChannelCredentials, createCsr, generateKey, type Credential, type KeyPair, type Logger } from "@cirrus/common";
import { agent } from "@cirrus/proto";
import type { DomainStatus } from "./driver/types.js";

export interface HostIdentity {
  hostId: string;
  hostSecret: string;
}

/** What the agent tells the control plane about itself, minus credentials. */
export type HostDescription = Omit<agent.RegisterHostRequest, "enrolmentToken" | "hostSecret" | "csrPem">;

/** The control plane refused this agent; retrying the same request cannot help. */
export class RegistrationRejected extends Error {
  override name = "RegistrationRejected";
}

const CALL_TIMEOUT_MS = 10_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// Statuses that mean "this request is wrong", not "the control plane is down".
const FATAL = new Set<number>([status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION]);

export interface ControlOptions {
  endpoint: string;
  /** The cluster CA's certificate (PEM): the control plane's must chain to it. */
  caPem: string;
  /** Holds host.json ({hostId, hostSecret}), agent-key.pem and agent-cert.pem, mode 0600. */
  stateDir: string;
  enrolmentToken?: string;
  log: Logger;
}

export function grpcCode(err: unknown): number | undefined {
  const code = (err as Partial<ServiceError> | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Resolves after ms, or at once when the signal is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

export class ControlPlane {
  private client: agent.HostControlClient;
  private readonly statePath: string;
  private current: HostIdentity | undefined;
  private tls: Credential | undefined;

  constructor(private readonly opts: ControlOptions) {
    this.client = this.connect(undefined);
    this.statePath = join(opts.stateDir, "host.json");
  }

  /** The agent's key and the certificate of its last registration; undefined before. */
  get credential(): Credential | undefined {
    return this.tls;
  }

  private connect(own: Credential | undefined): agent.HostControlClient {
    return new agent.HostControlClient(this.opts.endpoint, clusterChannelCredentials(this.opts.caPem, own), agentChannelOptions);
  }

  /** The agent's key pair, made (0600) the first time. */
  private async key(): Promise<KeyPair> {
    const path = join(this.opts.stateDir, "agent-key.pem");
    try {
      const privateKeyPem = await readFile(path, "utf8");
      return { privateKeyPem, publicKeyPem: createPublicKey(privateKeyPem).export({ type: "spki", format: "pem" }).toString() };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const key = await generateKey();
    await this.writePrivate("agent-key.pem", key.privateKeyPem);
    return key;
  }

  /** The identity from the last successful registration; undefined before. */
  get identity(): HostIdentity | undefined {
    return this.current;
  }

  /** The identity stored by an earlier run, if any. Throws on a corrupt file (a human should look). */
  async storedIdentity(): Promise<HostIdentity | undefined> {
    let text: string;
    try {
      text = await readFile(this.statePath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const v = JSON.parse(text) as Partial<HostIdentity>;
    if (typeof v.hostId !== "string" || typeof v.hostSecret !== "string" || !v.hostId || !v.hostSecret) {
      throw new Error(`${this.statePath} does not hold {hostId, hostSecret}`);
    }
    return { hostId: v.hostId, hostSecret: v.hostSecret };
  }

  /**
   * Registers until it succeeds: with the stored host secret when there is
   * one, else with the enrolment token. Persists the returned identity
   * (0600) before resolving. Retries with capped exponential backoff while the
   * control plane is unreachable or failing; throws RegistrationRejected when
   * it refuses the credentials or the request, and rejects with the signal's
   * reason when aborted.
   */
  async register(describe: () => Promise<HostDescription>, signal: AbortSignal): Promise<HostIdentity> {
    const stored = await this.storedIdentity();
    if (!stored && !this.opts.enrolmentToken) {
      throw new RegistrationRejected(`no host identity in ${this.statePath} and no enrolment token (CIRRUS_ENROLMENT_TOKEN) to get one`);
    }
    const key = await this.key();
    const csrPem = createCsr(key);
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      try {
        const req: agent.RegisterHostRequest = {
          ...(await describe()),
          enrolmentToken: stored ? "" : (this.opts.enrolmentToken ?? ""),
          hostSecret: stored?.hostSecret ?? "",
          csrPem,
        };
        const md = stored ? bearerMetadata(stored.hostSecret, stored.hostId) : undefined;
        const res = await callUnary(this.client, this.client.registerHost, req, md, CALL_TIMEOUT_MS);
        if (!res.hostId || !res.hostSecret || !res.certificatePem) throw new Error("RegisterHost returned no host id, secret or certificate");
        const identity = { hostId: res.hostId, hostSecret: res.hostSecret };
        await this.persist(identity);
        await this.writePrivate("agent-cert.pem", res.certificatePem);
        this.tls = { certPem: res.certificatePem, keyPem: key.privateKeyPem };
        // From now on every call presents the certificate.
        this.client.close();
        this.client = this.connect(this.tls);
        this.current = identity;
        this.opts.log.info({ hostId: identity.hostId, reregistered: Boolean(stored) }, "registered with the control plane");
        return identity;
      } catch (err) {
        const code = grpcCode(err);
        if (code !== undefined && FATAL.has(code)) {
          const hint = stored ? `; to enrol afresh, remove ${this.statePath}, set CIRRUS_ENROLMENT_TOKEN and a host name not enrolled yet (CIRRUS_HOST_NAME)` : "";
          throw new RegistrationRejected(`control plane refused registration (${status[code]}): ${(err as ServiceError).details}${hint}`);
        }
        const delay = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
        this.opts.log.warn({ attempt, retryInMs: Math.round(delay), err: errorText(err) }, "registration failed; retrying");
        await sleep(delay, signal);
      }
    }
  }

  /**
   * One heartbeat: reports the domains and the revision of the host state
   * applied last; resolves with the host's state when the control plane has
   * a newer one. Throws on any failure.
   */
  async heartbeat(instances: DomainStatus[], appliedRevision: number): Promise<agent.HostState | undefined> {
    const id = this.registered();
    const res = await callUnary(this.client, this.client.heartbeat, { hostId: id.hostId, instances, appliedRevision }, bearerMetadata(id.hostSecret, id.hostId), CALL_TIMEOUT_MS);
    return res.state;
  }

  /** The user data of an instance on this host, for the metadata service. Throws on any failure (NOT_FOUND: not on this host). */
  async userData(instanceId: string): Promise<Buffer> {
    const id = this.registered();
    return (await callUnary(this.client, this.client.getUserData, { instanceId }, bearerMetadata(id.hostSecret, id.hostId), CALL_TIMEOUT_MS)).userData;
  }

  /** The control plane's verdict on each of these instances (at most 1000), as HostControl.ClassifyInstances answers. Throws on any failure. */
  async classify(instanceIds: readonly string[]): Promise<Map<string, agent.InstanceVerdict>> {
    const id = this.registered();
    const res = await callUnary(this.client, this.client.classifyInstances, { instanceIds: [...instanceIds] }, bearerMetadata(id.hostSecret, id.hostId), CALL_TIMEOUT_MS);
    return new Map(res.instances.map((i) => [i.instanceId, i.verdict]));
  }

  private registered(): HostIdentity {
    if (!this.current) throw new Error("not registered with the control plane yet");
    return this.current;
  }

  close(): void {
    this.client.close();
  }

  /** Atomically replaces host.json with mode 0600 (the secret never sits in a readable file). */
  private persist(identity: HostIdentity): Promise<void> {
    return this.writePrivate("host.json", `${JSON.stringify(identity)}\n`);
  }

  /** Atomically replaces `name` in the state directory with `content`, mode 0600. */
  private async writePrivate(name: string, content: string): Promise<void> {
    await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    const path = join(this.opts.stateDir, name);
    const tmp = `${path}.tmp`;
    await writeFile(tmp, content, { mode: 0o600 });
    await chmod(tmp, 0o600); // mode applies only when writeFile creates the file
    await rename(tmp, path);
  }
}

export function errorText(err: unknown): string {
  const se = err as Partial<ServiceError>;
  if (typeof se?.code === "number") return `${status[se.code]}: ${se.details ?? ""}`;
  return err instanceof Error ? err.message : String(err);
}
