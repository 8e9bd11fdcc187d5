// Runs commands on a bare-metal host over one multiplexed SSH connection.
// SSH's exec request carries a single command string that the remote login
// shell parses, so argv is quoted by shellQuote and nothing else.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Client, type ClientChannel } from "ssh2";
import { shellQuote } from "./shell-quote.js";
import { commandStarted } from "./trace.js";
import { CommandError, DEFAULT_TIMEOUT_MS, settle, type CommandRunner, type RunOptions, type RunResult } from "./types.js";

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** Path of the private key file (OpenSSH or PEM format). */
  privateKeyPath: string;
  /**
   * Expected host key fingerprint in OpenSSH form ("SHA256:base64"). When
   * unset any host key is accepted, which is only sane on a trusted network.
   */
  hostKeyFingerprint?: string;
}

// OpenSSH allows 10 sessions per connection by default (MaxSessions); beyond
// that channel opens fail, so concurrent commands queue here instead.
const MAX_CHANNELS = 8;

/** The OpenSSH-style fingerprint of a raw host key: "SHA256:" + unpadded base64. */
function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

export class SshRunner implements CommandRunner {
  readonly target: string;
  /** The shared connection, or the attempt to make it. */
  private connection: Promise<Client> | undefined;
  /** The same connection once ready. */
  private connected: Client | undefined;
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  constructor(private readonly cfg: SshTarget) {
    this.target = `ssh://${cfg.username}@${cfg.host}:${cfg.port}`;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const command = shellQuote(argv);
    // Includes waiting for a channel: that wait is part of what the caller pays.
    const done = commandStarted(argv);
    let code = -1;
    await this.acquireChannel();
    try {
      const conn = await this.connect();
      const result = await this.exec(conn, argv, command, opts);
      code = result.code;
      return settle(argv, result, opts.okCodes);
    } finally {
      this.releaseChannel();
      done(code);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const conn = this.connection;
    this.connection = undefined;
    this.connected = undefined;
    if (conn) (await conn.catch(() => undefined))?.end();
  }

  private exec(conn: Client, argv: string[], command: string, opts: RunOptions): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      conn.exec(command, (err, stream: ClientChannel) => {
        if (err) {
          // Most often a connection that died without a close event yet:
          // drop it so the next command reconnects.
          this.forget(conn);
          return reject(new Error(`ssh exec on ${this.target} failed: ${err.message}`));
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        // The remote process cannot be killed portably over SSH (OpenSSH ignores
        // most signal requests), so a timeout abandons the channel; callers
        // that need a hard limit on the host wrap the command in timeout(1).
        const timer = setTimeout(() => {
          stream.close();
          reject(new CommandError(argv, -1, Buffer.concat(errOut).toString("utf8"), true));
        }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
        stream.on("data", (d: Buffer) => out.push(d));
        stream.stderr.on("data", (d: Buffer) => errOut.push(d));
        stream.on("close", (code: number | null, signal?: string) => {
          clearTimeout(timer);
          const stderr = Buffer.concat(errOut).toString("utf8");
          // A null code means the remote side reported a signal or nothing at all.
          if (typeof code !== "number") return reject(new CommandError(argv, -1, `${stderr}\nremote command ended by ${signal ?? "unknown cause"}`));
          resolve({ stdout: Buffer.concat(out), stderr, code });
        });
        stream.on("error", () => {});
        stream.end(opts.input ?? "");
      });
    });
  }

  /** The shared connection, (re)established on demand after a drop. */
  private connect(): Promise<Client> {
    if (this.closed) return Promise.reject(new Error(`ssh runner for ${this.target} is closed`));
    if (this.connection) return this.connection;
    const attempt = this.open();
    this.connection = attempt;
    attempt.then(
      (conn) => {
        this.connected = conn;
        conn.on("close", () => this.forget(conn));
        conn.on("end", () => this.forget(conn));
      },
      () => {
        if (this.connection === attempt) this.connection = undefined;
      },
    );
    return attempt;
  }

  /** Drops `conn` as the shared connection (if it still is) and closes it. */
  private forget(conn: Client): void {
    if (this.connected === conn) {
      this.connected = undefined;
      this.connection = undefined;
    }
    conn.end();
  }

  private async open(): Promise<Client> {
    const privateKey = await readFile(this.cfg.privateKeyPath);
    const expected = this.cfg.hostKeyFingerprint;
    return new Promise((resolve, reject) => {
      const conn = new Client();
      let ready = false;
      conn.on("ready", () => {
        ready = true;
        resolve(conn);
      });
      conn.on("error", (err) => {
        if (!ready) reject(new Error(`ssh connection to ${this.target} failed: ${err.message}`));
        // After ready, an error is followed by "close", which drops the connection.
      });
      conn.connect({
        host: this.cfg.host,
        port: this.cfg.port,
        username: this.cfg.username,
        privateKey,
        readyTimeout: 15_000,
        keepaliveInterval: 15_000,
        hostVerifier: expected ? (key: Buffer) => hostKeyFingerprint(key) === expected : undefined,
      });
    });
  }

  private async acquireChannel(): Promise<void> {
    if (this.active < MAX_CHANNELS) {
      this.active++;
      return;
    }
    await new Promise<void>((wake) => this.waiting.push(wake));
  }

  private releaseChannel(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.active--;
  }
}
