// Writes src/query/model.gen.json: EC2's API model reduced to what the Query
// codec (src/query/decode.ts, encode.ts) needs, for the actions Cirrus
// serves. Read from the aws-sdk v2 package's EC2 model, a build-time-only
// dependency (end of support, so nothing imports it at run time). Run by
// `npm run generate` (turbo); the output is checked in and `npm test` fails
// when regenerating changes it.
//
// The actions are compute.proto's RPCs, which the core's tests keep equal
// to the operation table's names (services/core/test/operations.test.ts),
// plus EXTRA_ACTIONS. Reading them from the proto descriptors rather than
// importing the table keeps generation free of the core's sources and their
// build.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { computeDescriptors } from "@cirrus/proto";
import type { Member, OperationModel, QueryModel, ScalarType, Shape } from "../src/query/model.js";

/** Actions to model besides compute.proto's RPCs (e.g. ones the Query server answers itself). */
export const EXTRA_ACTIONS: readonly string[] = [];

/** A shape or a member reference of the aws-sdk's minified model (`{}` is a string). */
interface RawShape {
  readonly type?: string;
  readonly shape?: string;
  readonly members?: Readonly<Record<string, RawShape>>;
  readonly member?: RawShape;
  readonly locationName?: string;
  readonly queryName?: string;
  readonly [trait: string]: unknown;
}

interface RawOperation {
  readonly input?: RawShape;
  readonly output?: RawShape;
}

/** The aws-sdk's `apis/ec2-2016-11-15.min.json`. */
export interface RawEc2Model {
  readonly metadata: { readonly apiVersion: string };
  readonly operations: Readonly<Record<string, RawOperation>>;
  readonly shapes: Readonly<Record<string, RawShape>>;
}

const SCALARS: ReadonlySet<string> = new Set<ScalarType>(["string", "integer", "long", "float", "double", "boolean", "timestamp", "blob"]);
/** Traits of a member reference the codec carries. */
const MEMBER_TRAITS = new Set(["shape", "locationName", "queryName"]);
/**
 * Traits dropped on purpose: `required` (compute.proto's `cirrus.required`
 * carries it and the core checks it), `sensitive` (logging), and the
 * client-side `idempotencyToken` and deprecation notes. Any other trait
 * (`flattened`, `timestampFormat`, a map's `key`…) stops generation, so that
 * the codec learns it before a shape needing it is modelled.
 */
const DROPPED_TRAITS = new Set(["required", "sensitive", "idempotencyToken", "deprecated", "deprecatedMessage"]);
const SHAPE_TRAITS = new Set(["type", "members", "member"]);

/**
 * The reduced model for `names`. Postconditions: `actions` is every action
 * of `raw`, sorted; `operations` has exactly `names`; `shapes` holds exactly
 * the shapes reachable from their inputs and outputs, keyed in sorted order,
 * members in the model's order. Throws for a name `raw` lacks or a trait the
 * codec does not handle. Deterministic: the same inputs give the same JSON.
 */
export function buildQueryModel(raw: RawEc2Model, names: readonly string[]): QueryModel {
  const shapes = new Map<string, Shape>();

  function convertNamed(name: string): string {
    if (shapes.has(name)) return name;
    const rawShape = raw.shapes[name];
    if (!rawShape) throw new Error(`the EC2 model has no shape ${name}`);
    const scalar = scalarType(rawShape, name);
    if (scalar) return addScalar(scalar);
    return convertComposite(rawShape, name);
  }

  function addScalar(type: ScalarType): string {
    shapes.set(type, { type });
    return type;
  }

  /** Converts a structure or list; registers its name first, so that recursive shapes end. */
  function convertComposite(rawShape: RawShape, name: string): string {
    checkTraits(rawShape, SHAPE_TRAITS, name);
    if (rawShape.type === "structure") {
      const members: Record<string, Member> = {};
      shapes.set(name, { type: "structure", members });
      for (const [memberName, ref] of Object.entries(rawShape.members ?? {})) members[memberName] = convertRef(ref, `${name}.${memberName}`);
    } else {
      if (!rawShape.member) throw new Error(`list ${name} has no member`);
      // A placeholder until the element is converted, for the same reason.
      shapes.set(name, { type: "list", member: { shape: name } });
      shapes.set(name, { type: "list", member: convertRef(rawShape.member, `${name}.member`) });
    }
    return name;
  }

  /** A member reference: its own traits, and a named target or one defined in place (named `inlineName`). */
  function convertRef(ref: RawShape, inlineName: string): Member {
    const target = ref.shape !== undefined ? convertNamed(ref.shape) : convertInline(ref, inlineName);
    if (ref.shape !== undefined) checkTraits(ref, MEMBER_TRAITS, inlineName);
    return {
      shape: target,
      ...(ref.locationName !== undefined ? { locationName: ref.locationName } : {}),
      ...(ref.queryName !== undefined ? { queryName: ref.queryName } : {}),
    };
  }

  function convertInline(ref: RawShape, name: string): string {
    const shapeTraits = Object.fromEntries(Object.entries(ref).filter(([trait]) => !MEMBER_TRAITS.has(trait)));
    const scalar = scalarType(shapeTraits, name);
    return scalar ? addScalar(scalar) : convertComposite(shapeTraits, name);
  }

  /** An operation's input or output: a named shape, or one defined in place (named `inlineName`). */
  function convertTop(ref: RawShape, inlineName: string): string {
    if (ref.shape === undefined) return convertComposite(ref, inlineName);
    checkTraits(ref, new Set(["shape"]), inlineName);
    return convertNamed(ref.shape);
  }

  const operations: Record<string, OperationModel> = {};
  for (const name of [...new Set(names)].sort()) {
    const op = raw.operations[name];
    if (!op) throw new Error(`the EC2 model has no action ${name}`);
    // Every action Cirrus serves takes parameters (at least DryRun).
    if (!op.input) throw new Error(`the EC2 model's ${name} has no input`);
    const input = convertTop(op.input, `${name}Request`);
    operations[name] = op.output ? { input, output: convertTop(op.output, `${name}Result`) } : { input };
  }

  return {
    version: raw.metadata.apiVersion,
    actions: Object.keys(raw.operations).sort(),
    operations,
    shapes: Object.fromEntries([...shapes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
}

/** The scalar type `rawShape` is, or undefined for a structure or list. */
function scalarType(rawShape: RawShape, name: string): ScalarType | undefined {
  const type = rawShape.type ?? "string";
  if (type === "structure" || type === "list") return undefined;
  if (!SCALARS.has(type)) throw new Error(`shape ${name} has type ${type}, which the Query codec does not handle`);
  checkTraits(rawShape, new Set(["type"]), name);
  return type as ScalarType;
}

function checkTraits(rawShape: RawShape, allowed: ReadonlySet<string>, name: string): void {
  const unknown = Object.keys(rawShape).filter((trait) => !allowed.has(trait) && !DROPPED_TRAITS.has(trait));
  if (unknown.length) throw new Error(`${name} has traits the Query codec does not handle: ${unknown.join(", ")}`);
}

/** Writes model.gen.json for compute.proto's RPCs and EXTRA_ACTIONS. */
function main(): void {
  const require = createRequire(import.meta.url);
  const raw = require("aws-sdk/apis/ec2-2016-11-15.min.json") as RawEc2Model;
  const model = buildQueryModel(raw, [...Object.keys(computeDescriptors.methods), ...EXTRA_ACTIONS]);
  writeFileSync(new URL("../src/query/model.gen.json", import.meta.url), `${JSON.stringify(model, null, 2)}\n`);
}

// Only when run, not when imported (the test compares the checked-in file with buildQueryModel's answer).
if (process.argv[1] === fileURLToPath(import.meta.url)) main();
