// What every resource kind declares once (see registry.ts for the list):
// its id, table, EC2 error codes, Describe filters, mapping to the API shape,
// and its states. Describe paging, filters, tags and id checks are generic
// over this (describe.ts, validate.ts, tags/).
import type { IdPrefix } from "@cirrus/common";
import type { RequestContext } from "./context.js";
import type { Ec2Error, Ec2ErrorCode } from "./errors.js";
import type { FilterColumns } from "./filters.js";

/** The shape of an id: its prefix and the code EC2 answers for a malformed one. */
export interface IdShape {
  readonly idPrefix: IdPrefix;
  /** EC2's code for a malformed id (some kinds answer their NotFound code instead). */
  readonly malformed: Ec2ErrorCode;
}

export interface ResourceKind<Row extends { id: string } = { id: string }, Api = unknown> extends IdShape {
  /** The kind's name: lifecycle jobs, logs and the registry use it. */
  readonly name: string;
  /** EC2's resource type, as TagSpecifications and DescribeTags name it ("instance", "security-group"…). */
  readonly resourceType: string;
  /** The table holding one row per resource, keyed by `id`, with the owning account in `owner_id`. */
  readonly table: string;
  /** The error for well-formed ids that do not exist (or are not the caller's: the same answer). */
  notFound(ids: readonly string[]): Ec2Error;
  /** Describe filters besides tag:<key>, tag-key and tag-value: EC2 filter name → SQL expression over `table`. */
  readonly filters: FilterColumns;
  /**
   * SQL condition (over `table`) for rows that exist as far as the API is
   * concerned, e.g. images not deregistered; values go into `params`.
   */
  visible?(ctx: RequestContext, params: unknown[]): string;
  /**
   * SQL condition (over `table`) for the rows Describe shows the caller,
   * values into `params`: by default its own (`owner_id`); images also
   * those shared with it. Changing a resource always takes owning it
   * (findOwned).
   */
  readable?(ctx: RequestContext, params: unknown[]): string;
  /** The unique column Describe pages are ordered by (default `id`). */
  readonly orderBy?: string;
  /** Rows as the API shows them, with whatever else they carry (tags, addresses…), in row order. */
  toApi(ctx: RequestContext, rows: readonly Row[]): Promise<Api[]>;
  /** The stable states of the kind's lifecycle (see its transitions beside its steps), when it has one. */
  readonly states?: readonly string[];
}

/** Declares a kind, keeping its row and API types for the functions that use it. */
export function defineKind<Row extends { id: string }, Api>(kind: ResourceKind<Row, Api>): ResourceKind<Row, Api> {
  return kind;
}
