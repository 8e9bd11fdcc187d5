// The snapshot store's records, and the decisions taken from them alone
// (no I/O here): which snapshot a new one is diffed against, which data a
// volume or a snapshot in progress still reads, what deleted data can go.
//
// The records are one JSON file, read and replaced whole under the store's
// lock: snapshots are few enough per region for that, and one file changes
// atomically, so a record never disagrees with itself after a crash.
import { z } from "zod";

/**
 * creating: being taken (its file exists only under a temporary name, or
 * was renamed into place just before a crash). ready: complete and
 * visible. deleted: gone for callers, its file kept while something
 * still reads through it.
 */
export type LayerState = "creating" | "ready" | "deleted";

/** One snapshot: a qcow2 file holding what changed since `parent`, which it has as its backing file. */
export interface Layer {
  state: LayerState;
  /** The snapshot this one stores its differences from; null: standalone. */
  parent: string | null;
  /** The volume it was taken of; null for an import. */
  volumeId: string | null;
  /** The volume's size when it was taken (0 while creating). */
  sizeBytes: number;
  /** Set before a deleted layer's data is folded into its children (see DirectorySnapshotStore.fold): a fold a crash interrupted is redone first. */
  folding?: boolean;
}

export interface Catalog {
  version: 1;
  layers: Record<string, Layer>;
  /** Volume id → the snapshot its next snapshot is diffed against (its latest). */
  heads: Record<string, string>;
  /**
   * What reads a snapshot's data in place → that snapshot: a volume made
   * from it (its file has the snapshot as backing), or a snapshot being
   * taken (its temporary file is being written over the snapshot it diffs
   * against). A pinned snapshot and its whole chain are never changed.
   */
  pins: Record<string, string>;
}

const snapId = z.string().regex(/^snap-[0-9a-f]{17}$/);
const volId = z.string().regex(/^vol-[0-9a-f]{17}$/);
const schema = z.object({
  version: z.literal(1),
  layers: z.record(
    snapId,
    z.object({
      state: z.enum(["creating", "ready", "deleted"]),
      parent: snapId.nullable(),
      volumeId: volId.nullable(),
      sizeBytes: z.number().int().nonnegative(),
      folding: z.boolean().optional(),
    }),
  ),
  heads: z.record(volId, snapId),
  pins: z.record(z.union([volId, snapId]), snapId),
});

export function emptyCatalog(): Catalog {
  return { version: 1, layers: {}, heads: {}, pins: {} };
}

/** The catalog in `text`; throws on anything malformed (never treated as empty: that would forget what volumes still read). */
export function parseCatalog(text: string): Catalog {
  return schema.parse(JSON.parse(text)) as Catalog;
}

/** `id` and its ancestors, nearest first. Throws when the records name a layer they do not hold, or loop. */
export function ancestry(c: Catalog, id: string): string[] {
  const chain: string[] = [];
  for (let at: string | null = id; at !== null; at = c.layers[at]!.parent) {
    if (!c.layers[at]) throw new Error(`snapshot catalog: ${chain.at(-1) ?? "a pin"} refers to ${at}, which it does not hold`);
    if (chain.includes(at)) throw new Error(`snapshot catalog: the chain of ${id} loops at ${at}`);
    chain.push(at);
  }
  return chain;
}

/** Every layer something reads: the chains of all pinned layers. */
export function pinnedLayers(c: Catalog): Set<string> {
  const pinned = new Set<string>();
  for (const target of Object.values(c.pins)) for (const id of ancestry(c, target)) pinned.add(id);
  return pinned;
}

/** The layers whose parent is `id`, in id order. */
export function childrenOf(c: Catalog, id: string): string[] {
  return Object.keys(c.layers)
    .filter((k) => c.layers[k]!.parent === id)
    .sort();
}

/**
 * The snapshot a new snapshot of `volumeId` is diffed against: its latest
 * (while it is still held, deleted or not: pinning it as the base keeps
 * it), else the snapshot the volume was made from, else none (a full
 * snapshot). Any layer would give a correct snapshot; the nearest one
 * gives the smallest.
 */
export function diffBase(c: Catalog, volumeId: string): string | null {
  for (const id of [c.heads[volumeId], c.pins[volumeId]]) {
    const layer = id === undefined ? undefined : c.layers[id];
    if (layer && layer.state !== "creating") return id!;
  }
  return null;
}

/**
 * The next deleted layer whose data can go, or undefined: one nothing
 * pins, none in `skip`. Interrupted folds first, then those with the
 * fewest children (a leaf is only removed; a layer with children is
 * folded into them, which copies data).
 */
export function nextToCollect(c: Catalog, skip: ReadonlySet<string>): string | undefined {
  const pinned = pinnedLayers(c);
  const candidates = Object.keys(c.layers).filter((id) => c.layers[id]!.state === "deleted" && !pinned.has(id) && !skip.has(id));
  const rank = (id: string) => (c.layers[id]!.folding ? -1 : childrenOf(c, id).length);
  return candidates.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1))[0];
}

/**
 * Records that layer `id` is gone, its data folded into its children (or
 * none): they now differ from its parent, and a volume whose latest
 * snapshot it was diffs its next one against that parent.
 */
export function dropLayer(c: Catalog, id: string): void {
  const parent = c.layers[id]?.parent ?? null;
  for (const child of childrenOf(c, id)) c.layers[child]!.parent = parent;
  for (const [volume, head] of Object.entries(c.heads)) {
    if (head !== id) continue;
    if (parent === null) delete c.heads[volume];
    else c.heads[volume] = parent;
  }
  delete c.layers[id];
}
