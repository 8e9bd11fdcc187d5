// The snapshot catalog's decisions, on records alone.
import { describe, expect, it } from "vitest";
import { ancestry, childrenOf, diffBase, dropLayer, emptyCatalog, nextToCollect, parseCatalog, pinnedLayers, type Catalog, type Layer } from "../src/storage/catalog.js";

const S = (n: number) => `snap-${n.toString(16).padStart(17, "0")}`;
const V = (n: number) => `vol-${n.toString(16).padStart(17, "0")}`;

function catalog(layers: Array<[number, number | null, Partial<Layer>?]>, extra: Partial<Catalog> = {}): Catalog {
  const c = { ...emptyCatalog(), ...extra };
  for (const [id, parent, more] of layers) c.layers[S(id)] = { state: "ready", parent: parent === null ? null : S(parent), volumeId: V(1), sizeBytes: 1024 ** 3, ...more };
  return c;
}

describe("snapshot catalog", () => {
  it("ancestry walks to the root and refuses dangling or looping records", () => {
    const c = catalog([[1, null], [2, 1], [3, 2]]);
    expect(ancestry(c, S(3))).toEqual([S(3), S(2), S(1)]);
    expect(() => ancestry(catalog([[2, 1]]), S(2))).toThrow(/does not hold/);
    expect(() => ancestry(catalog([[1, 2], [2, 1]]), S(1))).toThrow(/loops/);
  });

  it("a pin protects the pinned layer and its whole chain, nothing else", () => {
    const c = catalog([[1, null], [2, 1], [3, 2], [4, 1]], { pins: { [V(2)]: S(2) } });
    expect([...pinnedLayers(c)].sort()).toEqual([S(1), S(2)]);
    expect(childrenOf(c, S(1))).toEqual([S(2), S(4)]);
  });

  it("diffBase: the volume's latest (deleted or not), else the snapshot it was made from, else none; never one being made", () => {
    const c = catalog([[1, null], [2, 1], [3, 2, { state: "creating" }], [4, null, { folding: true, state: "deleted" }]]);
    expect(diffBase(c, V(1))).toBeNull();
    c.pins[V(1)] = S(1);
    expect(diffBase(c, V(1))).toBe(S(1));
    c.heads[V(1)] = S(2);
    expect(diffBase(c, V(1))).toBe(S(2));
    c.layers[S(2)]!.state = "deleted";
    expect(diffBase(c, V(1))).toBe(S(2));
    c.heads[V(1)] = S(3);
    expect(diffBase(c, V(1))).toBe(S(1));
    c.heads[V(1)] = S(4);
    expect(diffBase(c, V(1))).toBe(S(4));
  });

  it("nextToCollect: only deleted, unpinned layers; interrupted folds first, then leaves", () => {
    const c = catalog([[1, null, { state: "deleted" }], [2, 1, { state: "deleted" }], [3, 2], [5, null, { state: "deleted" }]]);
    expect(nextToCollect(c, new Set())).toBe(S(5));
    expect(nextToCollect(c, new Set([S(5)]))).toBe(S(1));
    c.layers[S(2)]!.folding = true;
    expect(nextToCollect(c, new Set())).toBe(S(2));
    c.pins[V(9)] = S(3);
    expect(nextToCollect(c, new Set())).toBe(S(5));
    c.pins[V(8)] = S(5);
    expect(nextToCollect(c, new Set())).toBeUndefined();
  });

  it("a snapshot being taken pins the layer it is diffed against", () => {
    const c = catalog([[1, null, { state: "deleted" }], [2, 1, { state: "creating" }]], { pins: { [S(2)]: S(1) } });
    expect(nextToCollect(c, new Set())).toBeUndefined();
  });

  it("dropLayer hands the layer's children and heads to its parent", () => {
    const c = catalog([[1, null], [2, 1], [3, 2], [4, 2]], { heads: { [V(1)]: S(2), [V(2)]: S(1) } });
    dropLayer(c, S(2));
    expect(c.layers[S(2)]).toBeUndefined();
    expect(c.layers[S(3)]!.parent).toBe(S(1));
    expect(c.layers[S(4)]!.parent).toBe(S(1));
    expect(c.heads).toEqual({ [V(1)]: S(1), [V(2)]: S(1) });
    dropLayer(c, S(1));
    expect(c.layers[S(3)]!.parent).toBeNull();
    expect(c.heads).toEqual({});
  });

  it("parseCatalog round-trips and refuses malformed records instead of starting empty", () => {
    const c = catalog([[1, null], [2, 1]], { heads: { [V(1)]: S(2) }, pins: { [V(3)]: S(1) } });
    expect(parseCatalog(JSON.stringify(c))).toEqual(c);
    expect(() => parseCatalog(JSON.stringify({ ...c, version: 2 }))).toThrow();
    expect(() => parseCatalog(JSON.stringify({ ...c, pins: { "../etc": S(1) } }))).toThrow();
    expect(() => parseCatalog("{")).toThrow();
  });
});
