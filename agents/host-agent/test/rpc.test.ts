// The libvirt RPC client against a fake daemon on a UNIX socket that speaks
// the same framing: what goes on the wire, replies out of order, libvirt
// errors by number, keepalive, a connection that breaks or never comes up.
// The real daemon is exercised by the libvirt integration tests.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { decodeError, encodeMessage, LibvirtConnectionError, LibvirtError, LibvirtRpc, Proc, VIR_ERR_NO_DOMAIN, XdrReader, XdrWriter, type DomainRef } from "../src/driver/libvirt/rpc.js";
import { traced } from "../src/runner/trace.js";

const REMOTE = 0x20008086;
const KEEPALIVE = 0x6b656570;

interface Call {
  program: number;
  procedure: number;
  type: number;
  serial: number;
  args: Buffer;
}

/** A daemon that answers each call with `answer` (undefined: no reply, the call hangs). */
class FakeDaemon {
  readonly calls: Call[] = [];
  readonly sockets: Socket[] = [];
  readonly pongs: number[] = [];
  private server: Server | undefined;
  answer: (call: Call, reply: (payload: Buffer) => void, fail: (code: number, message: string) => void) => void = (_c, reply) => reply(Buffer.alloc(0));

  async listen(path: string): Promise<void> {
    this.server = createServer((socket) => {
      this.sockets.push(socket);
      let buf = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
          const len = buf.readUInt32BE(0);
          const r = new XdrReader(buf.subarray(4, len));
          const call: Call = { program: r.uint(), procedure: (r.uint(), r.int()), type: r.int(), serial: r.uint(), args: (r.int(), buf.subarray(28, len)) };
          buf = buf.subarray(len);
          if (call.program === KEEPALIVE) {
            this.pongs.push(call.procedure);
            continue;
          }
          this.calls.push(call);
          this.answer(
            call,
            (payload) => socket.write(encodeMessage(REMOTE, call.procedure, 1, call.serial, 0, payload)),
            (code, message) => socket.write(encodeMessage(REMOTE, call.procedure, 1, call.serial, 1, errorPayload(code, message))),
          );
        }
      });
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => this.server!.listen(path, resolve));
  }

  ping(): void {
    for (const s of this.sockets) s.write(encodeMessage(KEEPALIVE, 1, 2, 0, 0, Buffer.alloc(0)));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

/** remote_error as libvirtd sends it. */
function errorPayload(code: number, message: string): Buffer {
  return new XdrWriter().int(code).int(10).optionalString(message).int(2).uint(0).optionalString(undefined).optionalString(undefined).optionalString(undefined).int(0).int(0).uint(0).bytes();
}

const dom: DomainRef = { name: "cirrus-i-0123456789abcdef0", uuid: Buffer.alloc(16, 7), id: -1 };
const domPayload = () => new XdrWriter().domain(dom).bytes();

/** Answers the handshake (auth list: none; open) and then `rest`. */
function daemonAnswers(rest: FakeDaemon["answer"]): FakeDaemon["answer"] {
  return (call, reply, fail) => {
    if (call.procedure === Proc.AUTH_LIST) return reply(new XdrWriter().uint(1).int(0).bytes());
    if (call.procedure === Proc.CONNECT_OPEN) return reply(Buffer.alloc(0));
    rest(call, reply, fail);
  };
}

describe("LibvirtRpc", () => {
  let dir: string;
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(answer: FakeDaemon["answer"]) {
    dir = mkdtempSync(join(tmpdir(), "cirrus-rpc-"));
    const daemon = new FakeDaemon();
    daemon.answer = daemonAnswers(answer);
    const socketPath = join(dir, "libvirt-sock");
    await daemon.listen(socketPath);
    const rpc = new LibvirtRpc({ socketPath, uri: "qemu:///system", callTimeoutMs: 500 });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => daemon.close(), () => rpc.close());
    return { daemon, rpc, socketPath };
  }

  it("authenticates, opens the URI, then sends each call as libvirt's XDR", async () => {
    const { daemon, rpc } = await setUp((call, reply) => {
      if (call.procedure === Proc.DOMAIN_LOOKUP_BY_NAME) reply(domPayload());
      else if (call.procedure === Proc.DOMAIN_GET_STATE) reply(new XdrWriter().int(1).int(1).bytes());
    });
    expect(await rpc.lookupDomain(dom.name)).toEqual(dom);
    expect(await rpc.domainState(dom)).toBe(1);
    expect(daemon.calls.map((c) => c.procedure)).toEqual([Proc.AUTH_LIST, Proc.CONNECT_OPEN, Proc.DOMAIN_LOOKUP_BY_NAME, Proc.DOMAIN_GET_STATE]);
    expect(daemon.calls.every((c) => c.program === REMOTE && c.type === 0)).toBe(true);
    expect(new Set(daemon.calls.map((c) => c.serial)).size).toBe(4);
    const open = new XdrReader(daemon.calls[1]!.args);
    expect([open.optionalString(), open.uint()]).toEqual(["qemu:///system", 0]);
    expect(new XdrReader(daemon.calls[2]!.args).string()).toBe(dom.name);
    const stateArgs = new XdrReader(daemon.calls[3]!.args);
    expect([stateArgs.domain(), stateArgs.uint()]).toEqual([dom, 0]);
    // One connection for all of them.
    expect(daemon.sockets).toHaveLength(1);
  });

  it("asks polkit when the daemon wants it, and refuses auth types it cannot do", async () => {
    const { daemon, rpc } = await setUp((call, reply) => reply(domPayload()));
    daemon.answer = (call, reply) => {
      if (call.procedure === Proc.AUTH_LIST) return reply(new XdrWriter().uint(1).int(2).bytes());
      if (call.procedure === Proc.AUTH_POLKIT) return reply(new XdrWriter().int(1).bytes());
      if (call.procedure === Proc.CONNECT_OPEN) return reply(Buffer.alloc(0));
      reply(domPayload());
    };
    expect(await rpc.defineXml("<domain/>")).toEqual(dom);
    expect(daemon.calls.map((c) => c.procedure)).toEqual([Proc.AUTH_LIST, Proc.AUTH_POLKIT, Proc.CONNECT_OPEN, Proc.DOMAIN_DEFINE_XML]);
    expect(new XdrReader(daemon.calls[3]!.args).string()).toBe("<domain/>");

    const sasl = await setUp(() => undefined);
    sasl.daemon.answer = (call, reply) => reply(new XdrWriter().uint(1).int(1).bytes());
    const err = await sasl.rpc.lookupDomain("x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtConnectionError);
    expect((err as LibvirtConnectionError).beforeSend).toBe(true);
    expect(String(err)).toMatch(/authentication this client cannot do/);
  });

  it("maps VIR_ERR_NO_DOMAIN to 'absent' and any other libvirt error to a LibvirtError with its number", async () => {
    const { rpc } = await setUp((call, _reply, fail) => {
      if (call.procedure === Proc.DOMAIN_LOOKUP_BY_NAME) fail(VIR_ERR_NO_DOMAIN, "Domain not found");
      else if (call.procedure === Proc.DOMAIN_GET_STATE) fail(VIR_ERR_NO_DOMAIN, "Domain not found");
      else fail(27, "XML error: bad");
    });
    expect(await rpc.lookupDomain("gone")).toBeUndefined();
    expect(await rpc.domainState(dom)).toBeUndefined();
    const err = await rpc.defineXml("<bad").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect(err).toMatchObject({ code: 27, message: "XML error: bad", procedure: Proc.DOMAIN_DEFINE_XML });
    expect(decodeError(errorPayload(42, "m"), 1)).toMatchObject({ code: 42, message: "m" });
  });

  it("matches replies to calls by serial, in whatever order they come", async () => {
    const held: Array<() => void> = [];
    const { rpc } = await setUp((call, reply) => {
      const name = new XdrReader(call.args).string();
      held.push(() => reply(new XdrWriter().domain({ ...dom, name }).bytes()));
      if (held.length === 2) for (const r of held.reverse()) r();
    });
    const [a, b] = await Promise.all([rpc.lookupDomain("first"), rpc.lookupDomain("second")]);
    expect([a?.name, b?.name]).toEqual(["first", "second"]);
  });

  it("answers the daemon's keepalive pings", async () => {
    const { daemon, rpc } = await setUp((_call, reply) => reply(domPayload()));
    await rpc.lookupDomain("x");
    daemon.ping();
    const deadline = Date.now() + 2000;
    while (daemon.pongs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(daemon.pongs).toEqual([2]);
  });

  it("fails calls in flight when the connection breaks, and connects again for the next call", async () => {
    let hang = true;
    const { daemon, rpc } = await setUp((call, reply) => {
      if (hang) {
        hang = false;
        return daemon.sockets[0]!.destroy();
      }
      reply(domPayload());
    });
    const err = await rpc.startDomain(dom).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtConnectionError);
    expect((err as LibvirtConnectionError).beforeSend).toBe(false);
    expect(await rpc.lookupDomain(dom.name)).toEqual(dom);
    expect(daemon.sockets).toHaveLength(2);
  });

  it("drops a connection whose call times out", async () => {
    const { daemon, rpc } = await setUp(() => undefined);
    const err = await rpc.startDomain(dom).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtConnectionError);
    expect(String(err)).toMatch(/timed out after 500 ms/);
    await new Promise((r) => setTimeout(r, 50));
    expect(daemon.sockets[0]!.destroyed || daemon.sockets[0]!.readableEnded).toBe(true);
  });

  it("reports a daemon that is not there as failing before anything was sent", async () => {
    dir = mkdtempSync(join(tmpdir(), "cirrus-rpc-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const rpc = new LibvirtRpc({ socketPath: join(dir, "no-such-sock"), uri: "qemu:///system" });
    const err = await rpc.defineXml("<domain/>").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtConnectionError);
    expect((err as LibvirtConnectionError).beforeSend).toBe(true);
  });

  it("records each call in the current command trace", async () => {
    const { rpc } = await setUp((_call, reply) => reply(domPayload()));
    const { trace } = await traced(async () => {
      await rpc.lookupDomain(dom.name);
      await rpc.startDomain(dom);
    });
    expect(trace.commands.map((c) => [c.argv.join(" "), c.code])).toEqual([
      [`libvirt-rpc lookup ${dom.name}`, 0],
      [`libvirt-rpc start ${dom.name}`, 0],
    ]);
  });

  it("round-trips XDR strings with padding, optional strings and domains", () => {
    const b = new XdrWriter().string("abcde").optionalString(undefined).optionalString("é").domain(dom).int(-5).bytes();
    expect(b.length % 4).toBe(0);
    const r = new XdrReader(b);
    expect([r.string(), r.optionalString(), r.optionalString(), r.domain(), r.int()]).toEqual(["abcde", undefined, "é", dom, -5]);
    expect(() => new XdrReader(Buffer.alloc(2)).uint()).toThrow(/truncated/);
  });
});
