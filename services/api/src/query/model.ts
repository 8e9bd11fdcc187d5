// EC2's API model as the Query codec needs it: the operations Cirrus serves,
// the shapes reachable from their inputs and outputs, and the names of every
// action EC2 has. Generated from the aws-sdk's EC2 model by
// scripts/query-model.ts into model.gen.json (checked in; `npm test` fails
// when regenerating changes it).
import generated from "./model.gen.json" with { type: "json" };

/** The scalar types of EC2's model; each is also the name of its shape. */
export type ScalarType = "string" | "integer" | "long" | "float" | "double" | "boolean" | "timestamp" | "blob";

/** A structure's member, or a list's element. */
export interface Member {
  /** The target shape's name in `QueryModel.shapes`. */
  readonly shape: string;
  /** The member's XML element name on output (EC2: lowerCamelCase); on input, capitalised, unless `queryName`. */
  readonly locationName?: string;
  /** The member's name on input, when it is neither the member name nor the capitalised `locationName`. */
  readonly queryName?: string;
}

export interface StructureShape {
  readonly type: "structure";
  /** Member name (the model's, e.g. `SecurityGroupIds`) → member, in the model's order. */
  readonly members: Readonly<Record<string, Member>>;
}

export interface ListShape {
  readonly type: "list";
  /** The element; its `locationName` names each element on output (EC2: `item`). */
  readonly member: Member;
}

export interface ScalarShape {
  readonly type: ScalarType;
}

export type Shape = StructureShape | ListShape | ScalarShape;

export interface OperationModel {
  /** The input structure's shape name. */
  readonly input: string;
  /** The output structure's shape name; absent when EC2's model declares no output. */
  readonly output?: string;
}

export interface QueryModel {
  /** The API version, e.g. "2016-11-15". */
  readonly version: string;
  /** Every action of EC2's model, sorted. */
  readonly actions: readonly string[];
  /** The actions the codec can decode and encode. */
  readonly operations: Readonly<Record<string, OperationModel>>;
  /** Every shape reachable from `operations`, by name. */
  readonly shapes: Readonly<Record<string, Shape>>;
}

/**
 * The generated model. The JSON is written by scripts/query-model.ts from a
 * value of this very type, so the cast only restores what JSON typing loses
 * (literal unions).
 */
export const QUERY_MODEL = generated as unknown as QueryModel;

/** The API version the model describes ("2016-11-15"): a request's `Version`. */
export const MODEL_VERSION = QUERY_MODEL.version;

const actions = new Set(QUERY_MODEL.actions);

/** True when `action` is an action of EC2's model, served by Cirrus or not (so not InvalidAction). */
export function isKnownAction(action: string): boolean {
  return actions.has(action);
}

/** The input and output shapes of `action`; undefined when the generated model does not cover it. */
export function operationModel(action: string): OperationModel | undefined {
  return Object.hasOwn(QUERY_MODEL.operations, action) ? QUERY_MODEL.operations[action] : undefined;
}

/** The shape named `name`. Throws when the model has none (a generated model is closed, so that is a bug). */
export function shapeNamed(name: string): Shape {
  const shape = Object.hasOwn(QUERY_MODEL.shapes, name) ? QUERY_MODEL.shapes[name] : undefined;
  if (!shape) throw new Error(`the Query model has no shape ${name}`);
  return shape;
}

/** The structure named `name`. Throws when it is absent or not a structure. */
export function structureNamed(name: string): StructureShape {
  const shape = shapeNamed(name);
  if (shape.type !== "structure") throw new Error(`shape ${name} is a ${shape.type}, not a structure`);
  return shape;
}

/**
 * A member's parameter name on input (EC2's Query rules): its `queryName`,
 * else its `locationName` with the first letter capitalised, else the member
 * name.
 */
export function inputName(memberName: string, member: Member): string {
  if (member.queryName !== undefined) return member.queryName;
  if (member.locationName !== undefined) return member.locationName.charAt(0).toUpperCase() + member.locationName.slice(1);
  return memberName;
}

/** A member's XML element name on output: its `locationName`, else the member name (as botocore and the AWS SDKs read it). */
export function outputName(memberName: string, member: Member): string {
  return member.locationName ?? memberName;
}

const byInputName = new WeakMap<StructureShape, ReadonlyMap<string, string>>();

/** The structure's members by their input parameter name: input name → member name. */
export function membersByInputName(shape: StructureShape): ReadonlyMap<string, string> {
  let names = byInputName.get(shape);
  if (!names) {
    names = new Map(Object.entries(shape.members).map(([name, member]) => [inputName(name, member), name]));
    byInputName.set(shape, names);
  }
  return names;
}
