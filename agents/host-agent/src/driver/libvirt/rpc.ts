// A persistent connection to the local libvirt daemon over its UNIX socket,
// speaking libvirt's own RPC protocol (XDR over the socket, as the C client
// library does: src/rpc/virnetprotocol.x, src/remote/remote_protocol.x),
// for the few calls on the launch path: look a domain up, read its state,
// define a domain, start it. A virsh process pays for loading the library
// and opening a connection (about 20 ms here) on every call; a call on this
// connection costs about a millisecond. No native addon: the protocol is
// plain bytes, and only its stable, numbered procedures are used.
//
// Everything else (and every call when the socket cannot be used) stays
// with virsh; see Virsh in virsh.ts, which falls back on its own.
import { connect, type Socket } from "node:net";
import { commandStarted } from "../../runner/trace.js";

const REMOTE_PROGRAM = 0x20008086;
const REMOTE_PROTOCOL_VERSION = 1;
const KEEPALIVE_PROGRAM = 0x6b656570;
const KEEPALIVE_PING = 1;
const KEEPALIVE_PONG = 2;

const enum MessageType {
  Call = 0,
  Reply = 1,
  Message = 2,
}
const enum Status {
  Ok = 0,
  Error = 1,
}

/** Procedure numbers of remote_protocol.x (never renumbered). */
export const Proc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  DOMAIN_CREATE: 9,
  DOMAIN_DEFINE_XML: 11,
  DOMAIN_LOOKUP_BY_NAME: 23,
  AUTH_LIST: 66,
  AUTH_POLKIT: 70,
  DOMAIN_GET_STATE: 212,
} as const;

const AUTH_NONE = 0;
const AUTH_POLKIT = 2;
/** virErrorNumber VIR_ERR_NO_DOMAIN: the domain does not exist. */
export const VIR_ERR_NO_DOMAIN = 42;
/** The largest message libvirt sends or accepts (VIR_NET_MESSAGE_MAX is 32 MiB). */
const MESSAGE_MAX = 32 * 1024 * 1024;

/** An error libvirt returned for a call: its virErrorNumber and message. */
export class LibvirtError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly procedure: number,
  ) {
    super(message);
    this.name = "LibvirtError";
  }
}

/**
 * The connection could not be made (`beforeSend`: the call never reached
 * libvirt) or broke (nothing is known about the call in flight).
 */
export class LibvirtConnectionError extends Error {
  override name = "LibvirtConnectionError";

  constructor(
    message: string,
    readonly beforeSend = false,
  ) {
    super(message);
  }
}

/** XDR encoding, just what the calls here need. */
export class XdrWriter {
  private readonly parts: Buffer[] = [];

  uint(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }

  int(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    this.parts.push(b);
    return this;
  }

  string(s: string): this {
    const bytes = Buffer.from(s, "utf8");
    this.uint(bytes.length);
    this.parts.push(bytes, Buffer.alloc((4 - (bytes.length % 4)) % 4));
    return this;
  }

  /** remote_string: a string that may be NULL. */
  optionalString(s: string | undefined): this {
    this.uint(s === undefined ? 0 : 1);
    return s === undefined ? this : this.string(s);
  }

  fixedOpaque(b: Buffer): this {
    this.parts.push(b, Buffer.alloc((4 - (b.length % 4)) % 4));
    return this;
  }

  domain(d: DomainRef): this {
    return this.string(d.name).fixedOpaque(d.uuid).int(d.id);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class XdrReader {
  private at = 0;

  constructor(private readonly b: Buffer) {}

  private need(n: number): void {
    if (this.at + n > this.b.length) throw new LibvirtConnectionError(`truncated libvirt message (${this.b.length} bytes, wanted ${this.at + n})`);
  }

  uint(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  int(): number {
    this.need(4);
    const v = this.b.readInt32BE(this.at);
    this.at += 4;
    return v;
  }

  string(): string {
    const n = this.uint();
    const padded = n + ((4 - (n % 4)) % 4);
    this.need(padded);
    const s = this.b.toString("utf8", this.at, this.at + n);
    this.at += padded;
    return s;
  }

  optionalString(): string | undefined {
    return this.uint() === 0 ? undefined : this.string();
  }

  fixedOpaque(n: number): Buffer {
    const padded = n + ((4 - (n % 4)) % 4);
    this.need(padded);
    const v = Buffer.from(this.b.subarray(this.at, this.at + n));
    this.at += padded;
    return v;
  }

  domain(): DomainRef {
    return { name: this.string(), uuid: this.fixedOpaque(16), id: this.int() };
  }

  optionalDomain(): DomainRef | undefined {
    return this.uint() === 0 ? undefined : this.domain();
  }
}

/** remote_nonnull_domain: how the protocol names a domain. */
export interface DomainRef {
  name: string;
  uuid: Buffer;
  id: number;
}

/** remote_error → LibvirtError. */
export function decodeError(payload: Buffer, procedure: number): LibvirtError {
  const r = new XdrReader(payload);
  const code = r.int();
  r.int(); // domain (which part of libvirt)
  const message = r.optionalString() ?? `libvirt error ${code}`;
  return new LibvirtError(code, message, procedure);
}

/** One message on the wire: length (including itself), header, payload. */
export function encodeMessage(program: number, procedure: number, type: number, serial: number, status: number, payload: Buffer): Buffer {
  const header = new XdrWriter().uint(program).uint(program === KEEPALIVE_PROGRAM ? 1 : REMOTE_PROTOCOL_VERSION).int(procedure).int(type).uint(serial).int(status).bytes();
  const len = Buffer.alloc(4);
  len.writeUInt32BE(4 + header.length + payload.length);
  return Buffer.concat([len, header, payload]);
}

interface Pending {
  procedure: number;
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface LibvirtRpcOptions {
  /** The daemon's read-write socket. */
  socketPath: string;
  /** The URI the daemon opens for us, e.g. qemu:///system. */
  uri: string;
  /** How long one call may take before the connection is dropped. */
  callTimeoutMs?: number;
}

/**
 * One connection, opened on first use and again after it breaks. Calls may
 * run concurrently (each has its serial number). Rejects with LibvirtError
 * for an error libvirt reported, LibvirtConnectionError when the
 * connection could not be made or broke (then the call's effect is unknown).
 */
export class LibvirtRpc {
  private socket: Socket | undefined;
  /** The socket has been through authentication and CONNECT_OPEN. */
  private ready = false;
  private opening: Promise<void> | undefined;
  private serial = 1;
  private readonly pending = new Map<number, Pending>();
  private buffered: Buffer = Buffer.alloc(0);
  private closed = false;

  constructor(private readonly opts: LibvirtRpcOptions) {}

  async lookupDomain(name: string): Promise<DomainRef | undefined> {
    try {
      return new XdrReader(await this.call(Proc.DOMAIN_LOOKUP_BY_NAME, new XdrWriter().string(name).bytes(), ["lookup", name])).domain();
    } catch (err) {
      if (err instanceof LibvirtError && err.code === VIR_ERR_NO_DOMAIN) return undefined;
      throw err;
    }
  }

  /** virDomainState number, or undefined when the domain has gone. */
  async domainState(dom: DomainRef): Promise<number | undefined> {
    try {
      return new XdrReader(await this.call(Proc.DOMAIN_GET_STATE, new XdrWriter().domain(dom).uint(0).bytes(), ["get-state", dom.name])).int();
    } catch (err) {
      if (err instanceof LibvirtError && err.code === VIR_ERR_NO_DOMAIN) return undefined;
      throw err;
    }
  }

  async defineXml(xml: string): Promise<DomainRef> {
    return new XdrReader(await this.call(Proc.DOMAIN_DEFINE_XML, new XdrWriter().string(xml).bytes(), ["define"])).domain();
  }

  async startDomain(dom: DomainRef): Promise<void> {
    await this.call(Proc.DOMAIN_CREATE, new XdrWriter().domain(dom).bytes(), ["start", dom.name]);
  }

  close(): void {
    this.closed = true;
    this.drop(new LibvirtConnectionError("libvirt connection closed"));
  }

  private async call(procedure: number, args: Buffer, what: readonly string[]): Promise<Buffer> {
    const done = commandStarted(["libvirt-rpc", ...what]);
    try {
      try {
        await this.open();
      } catch (err) {
        throw new LibvirtConnectionError(err instanceof Error ? err.message : String(err), true);
      }
      const payload = await this.send(procedure, args);
      done(0);
      return payload;
    } catch (err) {
      done(err instanceof LibvirtError ? 1 : -1);
      throw err;
    }
  }

  private open(): Promise<void> {
    if (this.closed) return Promise.reject(new LibvirtConnectionError("libvirt connection closed"));
    if (this.ready) return Promise.resolve();
    this.opening ??= this.handshake().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async handshake(): Promise<void> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(this.opts.socketPath);
      s.once("connect", () => resolve(s));
      s.once("error", (err) => reject(new LibvirtConnectionError(`cannot connect to ${this.opts.socketPath}: ${err.message}`)));
    });
    socket.on("data", (chunk: Buffer) => this.receive(socket, chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (this.socket === socket) this.drop(new LibvirtConnectionError("libvirt closed the connection"));
    });
    socket.unref();
    this.socket = socket;
    try {
      const auth = new XdrReader(await this.send(Proc.AUTH_LIST, Buffer.alloc(0)));
      const types = Array.from({ length: auth.uint() }, () => auth.int());
      if (types.length > 0 && !types.includes(AUTH_NONE)) {
        if (!types.includes(AUTH_POLKIT)) throw new LibvirtConnectionError(`libvirt asks for authentication this client cannot do (${types.join(",")})`);
        if (new XdrReader(await this.send(Proc.AUTH_POLKIT, Buffer.alloc(0))).int() !== 1) throw new LibvirtConnectionError("polkit authentication did not complete");
      }
      await this.send(Proc.CONNECT_OPEN, new XdrWriter().optionalString(this.opts.uri).uint(0).bytes());
      this.ready = true;
    } catch (err) {
      const failure = err instanceof LibvirtConnectionError ? err : new LibvirtConnectionError(`opening ${this.opts.uri} on ${this.opts.socketPath} failed: ${err instanceof Error ? err.message : String(err)}`);
      this.drop(failure);
      throw failure;
    }
  }

  private send(procedure: number, args: Buffer): Promise<Buffer> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new LibvirtConnectionError("not connected"));
    const serial = this.serial++;
    return new Promise((resolve, reject) => {
      const timeoutMs = this.opts.callTimeoutMs ?? 120_000;
      const timer = setTimeout(() => {
        // The call's outcome is unknown; a fresh connection for what follows.
        this.drop(new LibvirtConnectionError(`libvirt call ${procedure} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(serial, { procedure, resolve, reject, timer });
      // A connection with a call in flight keeps the process alive, as a child process would.
      socket.ref();
      socket.write(encodeMessage(REMOTE_PROGRAM, procedure, MessageType.Call, serial, Status.Ok, args));
    });
  }

  private receive(socket: Socket, chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 4) {
      const len = this.buffered.readUInt32BE(0);
      if (len < 28 || len > MESSAGE_MAX) return this.drop(new LibvirtConnectionError(`bad libvirt message length ${len}`));
      if (this.buffered.length < len) return;
      const message = this.buffered.subarray(4, len);
      this.buffered = this.buffered.subarray(len);
      this.dispatch(socket, message);
    }
  }

  private dispatch(socket: Socket, message: Buffer): void {
    const h = new XdrReader(message);
    const program = h.uint();
    h.uint(); // version
    const procedure = h.int();
    const type = h.int();
    const serial = h.uint();
    const status = h.int();
    const payload = message.subarray(24);
    if (program === KEEPALIVE_PROGRAM) {
      if (procedure === KEEPALIVE_PING) socket.write(encodeMessage(KEEPALIVE_PROGRAM, KEEPALIVE_PONG, MessageType.Message, 0, Status.Ok, Buffer.alloc(0)));
      return;
    }
    // Events (type Message) are never asked for; streams are never opened.
    if (program !== REMOTE_PROGRAM || type !== MessageType.Reply) return;
    const call = this.pending.get(serial);
    if (!call) return;
    this.pending.delete(serial);
    clearTimeout(call.timer);
    if (this.pending.size === 0) socket.unref();
    if (status === Status.Ok) call.resolve(payload);
    else call.reject(status === Status.Error ? decodeError(payload, call.procedure) : new LibvirtConnectionError(`unexpected libvirt reply status ${status}`));
  }

  /** Forgets the connection, failing every call in flight with `err`. */
  private drop(err: Error): void {
    const socket = this.socket;
    this.socket = undefined;
    this.ready = false;
    this.buffered = Buffer.alloc(0);
    socket?.destroy();
    for (const [serial, call] of this.pending) {
      this.pending.delete(serial);
      clearTimeout(call.timer);
      call.reject(err);
    }
  }
}
