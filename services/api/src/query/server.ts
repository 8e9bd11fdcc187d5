// The EC2 Query API over HTTP(S): one loop over the core's operation table,
// driven by the EC2 model (model.gen.json): the form is decoded into the
// operation's request message, the response message encoded as EC2's XML.
// Every request is signed (SigV4, sigv4.ts) with an account's access key, and
// acts as that account. No action is wired here by hand; no failure reaches
// the client as anything but EC2's error XML, and none crashes the process.
import { randomUUID } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { endpointHost } from "@cirrus/common";
import { asEc2Error, dryRun, Ec2Error, operationNamed, type Core, type ErrorCategory } from "@cirrus/core";
import type { Authenticator } from "../auth.js";
import { computeDescriptors } from "@cirrus/proto";
import { decodeRequest, isDryRun, unsupportedParameters } from "./decode.js";
import { encodeError, encodeResponse } from "./encode.js";
import { parseForm } from "./form.js";
import { isKnownAction, MODEL_VERSION } from "./model.js";
import { callerIdentityXml } from "./sts.js";

export interface QueryServerOptions {
  /** host:port; beyond loopback only with `tls`. */
  listen: string;
  tls?: { cert: Buffer; key: Buffer };
  auth: Authenticator;
  /** Longest request body; longer ones are refused before they are read in full. */
  maxBodyBytes: number;
}

/** HTTP statuses as EC2 answers them, by category; a few codes differ from their category. */
const STATUS: Record<ErrorCategory, number> = {
  invalid: 400,
  "not-found": 400,
  conflict: 400,
  precondition: 400,
  exhausted: 400,
  unauthenticated: 401,
  unsupported: 400,
  internal: 500,
};
const STATUS_OF_CODE: Partial<Record<string, number>> = {
  // EC2 lists these among its server errors.
  InsufficientInstanceCapacity: 500,
  Unavailable: 503,
  RequestExpired: 400,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The raw body, refused past `max` bytes without buffering the rest. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max) {
      reject(new Ec2Error("InvalidRequest", `The request body is larger than ${max} bytes.`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        reject(new Ec2Error("InvalidRequest", `The request body is larger than ${max} bytes.`));
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Parameters that belong to the protocol, not to the action's input. */
const isProtocolParameter = (name: string) => name === "Action" || name === "Version" || name.startsWith("X-Amz-");

interface Answer {
  status: number;
  xml: string;
  action?: string;
  code?: string;
  accountId?: string;
}

async function answer(core: Core, opts: QueryServerOptions, req: IncomingMessage, requestId: string): Promise<Answer> {
  if (req.method !== "GET" && req.method !== "POST") throw new Ec2Error("InvalidRequest", `The HTTP method ${req.method} is not supported; use POST or GET.`);
  const body = await readBody(req, opts.maxBodyBytes);
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? "" : url.slice(q + 1);
  let bodyText: string;
  try {
    bodyText = utf8.decode(body);
  } catch {
    throw new Ec2Error("InvalidParameterValue", "The request is not valid UTF-8.");
  }
  if (req.method === "POST" && body.length > 0 && !/^application\/x-www-form-urlencoded\b/i.test(req.headers["content-type"] ?? "")) {
    throw new Ec2Error("InvalidRequest", "A POST request's body must be application/x-www-form-urlencoded.");
  }
  const params = [...parseForm(rawQuery), ...(req.method === "POST" ? parseForm(bodyText) : [])];

  const { principal, service } = await opts.auth.http({ method: req.method, host: req.headers.host ?? "", path, rawQuery, headers: req.headers, body }, ["ec2", "sts"]);

  const single = (name: string) => {
    const values = params.filter(([k]) => k === name);
    if (values.length > 1) throw new Ec2Error("InvalidParameterValue", `The parameter ${name} appears more than once.`);
    return values[0]?.[1];
  };
  const action = single("Action");
  if (!action) throw new Ec2Error("MissingAction", "The request must contain the parameter Action.");
  const base = { action, accountId: principal.accountId };
  if (service === "sts") {
    if (action !== "GetCallerIdentity") throw new Ec2Error("InvalidAction", `The action ${action} is not valid for this web service.`);
    return { ...base, status: 200, xml: callerIdentityXml(principal.accountId, requestId) };
  }
  const version = single("Version");
  if (!version) throw new Ec2Error("MissingParameter", "The request must contain the parameter Version.");
  if (version !== MODEL_VERSION) throw new Ec2Error("NoSuchVersion", `The requested version (${version}) of service AmazonEC2 does not exist.`);
  const op = operationNamed(action);
  if (!op) {
    if (isKnownAction(action)) throw new Ec2Error("Unsupported", `The action ${action} is not supported by Cirrus yet.`);
    throw new Ec2Error("InvalidAction", `The action ${action} is not valid for this web service.`);
  }
  const input = decodeRequest(action, params.filter(([k]) => !isProtocolParameter(k)));
  // A parameter EC2 has and Cirrus does not is refused, never ignored.
  const unsupported = unsupportedParameters(action, input, computeDescriptors.methods[action]!.request);
  if (unsupported.length) throw new Ec2Error("Unsupported", `The parameter${unsupported.length > 1 ? "s" : ""} ${unsupported.join(", ")} of ${action} ${unsupported.length > 1 ? "are" : "is"} not supported by Cirrus yet.`);
  const ctx = { ...core, principal, requestId, log: core.log.child({ requestId, action, accountId: principal.accountId }) };
  const request = op.request.fromJSON(input);
  if (isDryRun(input)) await dryRun(ctx, op.handler, request);
  const response = await op.handler(ctx, request);
  return { ...base, status: 200, xml: encodeResponse(action, response, requestId) };
}

function send(res: ServerResponse, status: number, xml: string, requestId: string): void {
  // The SDKs read the request id from this header, not from the body.
  res.writeHead(status, { "content-type": "text/xml;charset=UTF-8", "content-length": Buffer.byteLength(xml), "x-amzn-requestid": requestId });
  res.end(xml);
}

/**
 * Serves the Query API on `opts.listen` until `stop`. Postconditions: every
 * request gets EC2's response or error XML (anything unexpected is answered
 * InternalError and logged, never crashes the process); a request that is
 * not correctly signed by an active key runs nothing.
 */
export async function startQueryServer(core: Core, opts: QueryServerOptions): Promise<{ port: number; stop(): Promise<void> }> {
  const host = endpointHost(opts.listen);
  const loopback = host === "localhost" || host === "::1" || /^127\./.test(host);
  if (!loopback && !opts.tls) throw new Error(`the Query API listens on ${opts.listen}, beyond loopback: give it a certificate (CIRRUS_QUERY_TLS_CERT_FILE, CIRRUS_QUERY_TLS_KEY_FILE)`);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    const started = performance.now();
    answer(core, opts, req, requestId).then(
      (a) => {
        send(res, a.status, a.xml, requestId);
        core.log.debug({ requestId, action: a.action, accountId: a.accountId, status: a.status, ms: Math.round(performance.now() - started) }, "query request");
      },
      (err: unknown) => {
        const e = asEc2Error(err);
        const status = STATUS_OF_CODE[e.code] ?? STATUS[e.category];
        if (e.category === "internal") core.log.error({ requestId, err }, "query request failed");
        else core.log.info({ requestId, code: e.code, status, ms: Math.round(performance.now() - started) }, e.message);
        send(res, status, encodeError(e.code, e.message, requestId), requestId);
      },
    );
  };
  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handle) : createHttpServer(handle);
  const port = Number(opts.listen.slice(opts.listen.lastIndexOf(":") + 1));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  // A client that breaks off mid-request must not take the process down.
  server.on("clientError", (_err, socket) => socket.destroy());
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
