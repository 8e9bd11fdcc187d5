// Every command is derived from the core's operation table and the compute
// API's descriptors, as the aws CLI derives its commands from the EC2 model:
// the command is the kebab-case of the action (RunInstances →
// run-instances), each request member is an option named the kebab-case of
// the member (ImageId → --image-id) and read according to its type, and the
// response's one list member is what is printed (and concatenated across
// pages when the action pages). Customizations (customizations.ts) change
// this only where the aws CLI itself differs.
import type { AnyOperation, ResourceKind } from "@cirrus/core/surface";
import { compute, computeDescriptors, type FieldDescriptor } from "@cirrus/proto";
import type { Rpc } from "../client.js";
import type { AnyCommandSpec } from "../command.js";
import type { ParamKind, ParamSpec } from "../params.js";
import type { Customization } from "./customizations.js";

/** `RunInstances` → `run-instances`; `PublicIpv4Pool` → `public-ipv4-pool`. */
export function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

const INTEGER_TYPES = new Set(["int32", "int64", "uint32", "uint64", "sint32", "sint64"]);

/** How an option of this member's type is read (params.ts). */
export function kindOf(f: FieldDescriptor): ParamKind {
  if (f.message) return f.repeated ? "structure-list" : "structure";
  if (f.repeated) return "string-list";
  if (f.type === "bool") return "flag";
  if (f.type === "bytes") return "blob";
  if (INTEGER_TYPES.has(f.type)) return "integer";
  return "string";
}

/** The shorthand syntax of a structure's members, as the aws CLI's help shows it: `Key=<string>,Tags=[{Key=<string>,Value=<string>},…]`. */
export function shorthandHint(message: string, depth = 0): string {
  const fields = computeDescriptors.messages[message] ?? {};
  return Object.entries(fields).map(([name, f]) => {
    const one = f.message ? (depth < 1 ? `{${shorthandHint(f.type, depth + 1)}}` : "{…}") : `<${f.type}>`;
    return `${name}=${f.repeated ? `[${one},…]` : one}`;
  }).join(",");
}

/** Filters a Describe action accepts: its own list, or its kind's plus the tag filters every kind has. */
function filterHelp(op: AnyOperation, kinds: readonly ResourceKind[]): string {
  const names = op.filters ?? [...kinds.flatMap((k) => Object.keys(k.filters)), "tag:<key>", "tag-key", "tag-value"];
  return `filters: Name=<name>,Values=<v1>,<v2> … (names: ${names.join(", ")})`;
}

function describeMember(op: AnyOperation, member: string, f: FieldDescriptor, kinds: readonly ResourceKind[]): string {
  if (member === "Filters") return filterHelp(op, kinds);
  if (member === "MaxResults") return "return one page of at most this many results";
  if (member === "NextToken") return "the NextToken of the previous page";
  const text = f.comment?.replace(/\s+/g, " ").trim() ?? "";
  if (f.message) return `${text ? `${text} ` : ""}shorthand ${shorthandHint(f.type)}, or JSON${f.repeated ? "; repeatable" : ""}`;
  return text || `${member} (${f.repeated ? "list of " : ""}${f.type})`;
}

/** The generated gRPC method of an action: `RunInstances` → compute.ComputeService.runInstances. */
function rpcOf(action: string): Rpc<unknown, unknown> {
  const rpc = (compute.ComputeService as Record<string, Rpc<unknown, unknown>>)[action.charAt(0).toLowerCase() + action.slice(1)];
  if (!rpc) throw new Error(`compute.proto has no RPC ${action}`);
  return rpc;
}

/** The command for one operation, with its customization applied. */
export function deriveCommand(op: AnyOperation, kinds: readonly ResourceKind[], custom: Customization = {}): AnyCommandSpec {
  const method = computeDescriptors.methods[op.name];
  if (!method) throw new Error(`compute.proto has no RPC ${op.name}`);
  const request = computeDescriptors.messages[method.request]!;
  const response = computeDescriptors.messages[method.response]!;
  const hidden = new Set(custom.hide ?? []);
  const params: ParamSpec[] = Object.entries(request)
    .filter(([member]) => !hidden.has(member))
    .map(([member, f]) => ({
      flag: kebab(member),
      member,
      kind: kindOf(f),
      description: describeMember(op, member, f, kinds),
      ...custom.options?.[member],
      ...(f.required ? { required: true } : {}),
    }));
  // The list a Describe returns, or the only member of a response: printed even when empty, as EC2 sends it.
  const lists = Object.entries(response).filter(([, f]) => f.repeated && f.message);
  const listKey = custom.listKey ?? (lists.length === 1 && (op.name.startsWith("Describe") || Object.keys(response).length === 1) ? lists[0]![0] : undefined);
  const pages = "NextToken" in request && "NextToken" in response;
  return {
    name: kebab(op.name),
    summary: op.summary,
    rpc: rpcOf(op.name),
    request: op.request,
    response: op.response,
    params: [...params, ...(custom.params ?? [])],
    ...(listKey ? { listKey } : {}),
    ...(pages ? { paginate: true } : {}),
    ...(custom.prepare ? { prepare: custom.prepare } : {}),
    ...(custom.table ? { table: custom.table } : {}),
    ...(custom.present ? { present: custom.present } : {}),
    ...(custom.raw ? { raw: custom.raw } : {}),
    ...(custom.wait ? { wait: custom.wait } : {}),
  };
}
