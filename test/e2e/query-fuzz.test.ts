// A fuzz test of the Query API against the real stack: 10,000 requests
// generated from EC2's model (the actions Cirrus serves, ones it does not,
// and nonsense), with parameters of the right names and wrong values, gaps
// and duplicates in list indexes, unknown names, huge values, broken
// encodings and bad signatures. Every answer must be EC2's XML (a response
// or an error, never InternalError) and the API must still be serving.
// Seeded: CIRRUS_FUZZ_SEED reproduces a run.
import { XMLValidator } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inputName, QUERY_MODEL, shapeNamed, type Shape } from "@cirrus/api/query-model";
import { errorCode, sendRaw, signedHeaders } from "../src/query.js";
import { Stack } from "../src/stack.js";

const REQUESTS = 10_000;
const CONCURRENCY = 8;
const seed = Number(process.env.CIRRUS_FUZZ_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const random = prng(seed);
const chance = (p: number) => random() < p;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const hex = (n: number) => Array.from({ length: n }, () => pick([..."0123456789abcdef"])).join("");

const served = Object.keys(QUERY_MODEL.operations);
const notServed = QUERY_MODEL.actions.filter((a) => !served.includes(a));

function stringValue(): string {
  return pick([
    () => `${pick(["i", "ami", "sg", "vpc", "subnet", "eipalloc", "eipassoc", "key", "vol"])}-${hex(17)}`,
    () => pick(["default", "t2.micro", "t2.nano", "lab-1a", "tcp", "-1", "0.0.0.0/0", "10.0.0.0/16", "running", "instance", "Name", "vpc", "self", "all"]),
    () => "é☃\u{1F600}".repeat(1 + Math.floor(random() * 4)),
    () => "x".repeat(Math.floor(random() * 70_000)),
    () => "\u0000\u0007\r\n<&>\"'",
    () => "",
    () => String(Math.floor(random() * 2 ** 33) - 2 ** 32),
  ])();
}

function scalarValue(type: string): string {
  if (chance(0.2)) return stringValue();
  switch (type) {
    case "integer":
    case "long":
      return String(pick([0, 1, 2, -1, 5, 1000, 100_001, 2 ** 31, Math.floor(random() * 100)]));
    case "boolean":
      return pick(["true", "false", "True", "yes"]);
    case "timestamp":
      return pick(["2026-12-01T00:00:00Z", "yesterday", "2026-13-45T99:00:00Z"]);
    case "blob":
      return pick([Buffer.from("#!/bin/sh\necho fuzz\n").toString("base64"), "not base64!", ""]);
    default:
      return stringValue();
  }
}

/** Parameters for `shape` named `name` ("" for the input itself), as a random client might send them. */
function params(shape: Shape, name: string, depth: number, out: [string, string][]): void {
  const under = (part: string) => (name === "" ? part : `${name}.${part}`);
  if (shape.type === "structure") {
    for (const [member, m] of Object.entries(shape.members)) {
      if (depth <= 3 && chance(depth === 0 ? 0.35 : 0.5)) params(shapeNamed(m.shape), under(inputName(member, m)), depth + 1, out);
    }
    if (chance(0.03)) out.push([under("Colour"), "blue"]);
  } else if (shape.type === "list") {
    const n = 1 + Math.floor(random() * 3);
    const indexes = Array.from({ length: n }, (_, i) => i + 1);
    // Now and then a zero, a gap or a duplicate.
    if (chance(0.05)) indexes.push(pick([0, n + 2, 1]));
    for (const i of indexes) params(shapeNamed(shape.member.shape), under(String(i)), depth + 1, out);
  } else {
    out.push([name, scalarValue(shape.type)]);
  }
}

function request(): { body: string; tamper: boolean } {
  const action = chance(0.8) ? pick(served) : chance(0.5) ? pick(notServed) : pick(["", "Nope", "describeinstances", "RunInstances RunInstances"]);
  const list: [string, string][] = [["Action", action]];
  if (!chance(0.03)) list.push(["Version", chance(0.97) ? QUERY_MODEL.version : "2014-01-01"]);
  const op = QUERY_MODEL.operations[action];
  if (op) params(shapeNamed(op.input), "", 0, list);
  if (chance(0.1)) list.push(["DryRun", "true"]);
  let body = list.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
  if (chance(0.02)) body += "&Junk=%FF%FE";
  if (chance(0.02)) body += "&Broken=%Z1";
  if (chance(0.01)) body += "&=nameless";
  return { body, tamper: chance(0.03) };
}

const stack = new Stack();
beforeAll(() => stack.start(0));
afterAll(() => stack.stop());

describe("Query API fuzz", () => {
  it(`answers ${REQUESTS} generated requests with EC2's XML, never an internal error, and keeps serving (seed ${seed})`, async () => {
    const codes = new Map<string, number>();
    const problems: string[] = [];
    let sent = 0;
    const worker = async () => {
      while (sent < REQUESTS) {
        sent++;
        const { body, tamper } = request();
        const headers = await signedHeaders(stack.queryEndpoint, stack.key, body);
        const answer = await sendRaw(stack.queryEndpoint, { headers, body: tamper ? `${body}&X=1` : body });
        const code = errorCode(answer) ?? `${answer.status}`;
        codes.set(code, (codes.get(code) ?? 0) + 1);
        const wellFormed = answer.contentType === "text/xml;charset=UTF-8" && XMLValidator.validate(answer.body) === true;
        const fine = answer.status === 200 ? !errorCode(answer) : answer.status >= 400 && answer.status < 500 || (answer.status === 500 && code === "InsufficientInstanceCapacity");
        if (!wellFormed || !fine || code === "InternalError") problems.push(`${answer.status} ${code}: ${body.slice(0, 300)} → ${answer.body.slice(0, 300)}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    console.log(`fuzz seed ${seed}: ${[...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(", ")}`);
    expect(problems.slice(0, 10)).toEqual([]);
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(REQUESTS);
    // The generator reaches the handlers, not only the decoder.
    expect(codes.get("200") ?? 0).toBeGreaterThan(REQUESTS / 50);
    expect(codes.get("DryRunOperation") ?? 0).toBeGreaterThan(0);
    expect(stack.api.child?.exitCode).toBeNull();
    expect((await stack.call("describeRegions", {})).Regions.length).toBeGreaterThan(0);
  }, 600_000);
});
