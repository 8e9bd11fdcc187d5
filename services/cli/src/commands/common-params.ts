// Options several commands share, declared once so their help reads the same.
import type { ParamSpec } from "../params.js";

/** `--filters Name=…,Values=…,…` (repeatable, or a JSON list). */
export const FILTERS = (names: string): ParamSpec => ({
  flag: "filters",
  kind: "structure-list",
  description: `filters: Name=<name>,Values=<v1>,<v2> … (names: ${names})`,
});

export const MAX_RESULTS: ParamSpec = { flag: "max-results", kind: "integer", description: "return one page of at most this many results" };

export const NEXT_TOKEN: ParamSpec = { flag: "next-token", kind: "string", description: "the NextToken of the previous page" };

export const TAG_SPECIFICATIONS: ParamSpec = {
  flag: "tag-specifications",
  kind: "structure-list",
  description: "tags to apply: ResourceType=<type>,Tags=[{Key=<k>,Value=<v>},…]",
};
