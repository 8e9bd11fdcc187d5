// Column readers several tables share.
import type { compute } from "@cirrus/proto";

/** The value of a resource's Name tag, the name people know it by. */
export function nameTag(tags: readonly compute.Tag[]): string | undefined {
  return tags.find((t) => t.Key === "Name")?.Value;
}
