// One EC2 action, declared once beside its resource: its request and
// response messages, its handler, whether it mutates (DryRun and ClientToken
// apply to those), and the resource kinds it touches. The gRPC server, the
// CLI (and the Query and console adapters to come) loop over the table of
// these in operations.ts; none of them wires an action by hand.
import type { RequestContext } from "./context.js";
import { Ec2Error } from "./errors.js";

/** A generated message's codec (ts-proto's MessageFns). */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  fromJSON(object: unknown): T;
  toJSON(message: T): unknown;
  fromPartial(object: never): T;
}

export interface Operation<Req, Res> {
  /** The EC2 action, e.g. "RunInstances"; also the gRPC method's name. */
  readonly name: string;
  /** One line for help texts. */
  readonly summary: string;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
  /** True when the action changes state (EC2's DryRun and ClientToken apply to mutating actions). */
  readonly mutates: boolean;
  /** The resource kinds (registry names) it reads or changes. */
  readonly kinds: readonly string[];
  /**
   * For a Describe action whose filters are not its kind's (e.g.
   * DescribeTags): the filter names it accepts.
   */
  readonly filters?: readonly string[];
  /**
   * Postconditions: resolves with the response once every change it made is
   * committed; throws an Ec2Error (having written nothing) for a request it
   * refuses. Anything else it throws is an internal error.
   */
  handler(ctx: RequestContext, request: Req): Promise<Res>;
}

/** An operation with its message types erased, for the table of operations of different types. */
export type AnyOperation = Operation<any, any>;

/**
 * The path of the first string in `value` that holds U+0000, which no
 * Postgres text can store (it would fail the statement, an internal error).
 */
function nulPath(value: unknown, path: string): string | undefined {
  if (typeof value === "string") return value.includes("\u0000") ? path : undefined;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = nulPath(v, `${path}.${i + 1}`);
      if (found) return found;
    }
  } else if (value && typeof value === "object" && !(value instanceof Uint8Array)) {
    for (const [k, v] of Object.entries(value)) {
      const found = nulPath(v, path ? `${path}.${k}` : k);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * Declares an operation, checking its parts against each other before the
 * types are erased. Whatever the transport, a request with a NUL character
 * in any string is refused (InvalidParameterValue) before the handler runs.
 */
export function defineOperation<Req, Res>(op: Operation<Req, Res>): AnyOperation {
  return {
    ...op,
    handler: async (ctx, request) => {
      const path = nulPath(request, "");
      if (path) throw new Ec2Error("InvalidParameterValue", `The value of ${path} must not contain the character U+0000.`);
      return op.handler(ctx, request);
    },
  };
}
