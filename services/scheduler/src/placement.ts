// Placement as pure functions: filters say whether (and why not) a host can
// take one more instance; weighers score the hosts that pass; `planPlacement`
// places instances one by one on tentative usage, so a single plan never
// overcommits. Claiming the plan's capacity is the caller's job; it may find a
// host filled up meanwhile and plan again (services/core/src/instances/run.ts).

export interface HostCapacity {
  id: string;
  availabilityZone: string;
  alive: boolean;
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  usedVcpus: number;
  usedMemoryMib: number;
  usedDiskGib: number;
}

export interface PlacementRequest {
  /** Place up to this many instances… */
  maxCount: number;
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  /** Only hosts in this zone, when set. */
  availabilityZone?: string;
  /** spread: prefer the emptiest host (default); pack: the fullest that fits. */
  strategy: "spread" | "pack";
}

export interface Filter {
  name: string;
  /** True when the verdict depends on the host's usage, so placing an instance on it may change it. */
  dynamic?: boolean;
  /** undefined when the host passes; otherwise why it does not. */
  rejects(host: HostCapacity, req: PlacementRequest): string | undefined;
}

export const availabilityZoneFilter: Filter = {
  name: "AvailabilityZone",
  rejects: (h, r) => (r.availabilityZone && h.availabilityZone !== r.availabilityZone ? `host is in ${h.availabilityZone}, not ${r.availabilityZone}` : undefined),
};

export const aliveFilter: Filter = {
  name: "Alive",
  rejects: (h) => (h.alive ? undefined : "no recent heartbeat"),
};

export const capacityFilter: Filter = {
  name: "Capacity",
  dynamic: true,
  rejects: (h, r) => {
    const short: string[] = [];
    if (h.vcpus - h.usedVcpus < r.vcpus) short.push(`vCPU ${h.vcpus - h.usedVcpus} free < ${r.vcpus}`);
    if (h.memoryMib - h.usedMemoryMib < r.memoryMib) short.push(`memory ${h.memoryMib - h.usedMemoryMib} MiB free < ${r.memoryMib}`);
    if (h.diskGib - h.usedDiskGib < r.diskGib) short.push(`disk ${h.diskGib - h.usedDiskGib} GiB free < ${r.diskGib}`);
    return short.length ? short.join(", ") : undefined;
  },
};

export const defaultFilters: readonly Filter[] = [availabilityZoneFilter, aliveFilter, capacityFilter];

/** Fraction of the host's scarcest resource still free after placing one more instance (0..1). */
export function freeFractionAfter(h: HostCapacity, r: PlacementRequest): number {
  const frac = (total: number, used: number, need: number) => (total > 0 ? (total - used - need) / total : 0);
  return Math.min(frac(h.vcpus, h.usedVcpus, r.vcpus), frac(h.memoryMib, h.usedMemoryMib, r.memoryMib), frac(h.diskGib, h.usedDiskGib, r.diskGib));
}

export interface Weigher {
  name: string;
  multiplier: number;
  score(host: HostCapacity, req: PlacementRequest): number;
}

/** Spread: the more room left, the better. Pack uses the same score with a negative multiplier. */
export function weighersFor(strategy: PlacementRequest["strategy"]): Weigher[] {
  return [{ name: "FreeCapacity", multiplier: strategy === "pack" ? -1 : 1, score: freeFractionAfter }];
}

export interface PlacementPlan {
  /** Host id for each placed instance, in launch-index order. */
  hostIds: string[];
  /** Why each host was rejected at the point placement stopped. */
  rejections: Record<string, string[]>;
}

export function rejectionsFor(host: HostCapacity, req: PlacementRequest, filters: readonly Filter[]): string[] {
  return filters.flatMap((f) => {
    const why = f.rejects(host, req);
    return why ? [`${f.name}: ${why}`] : [];
  });
}

/** A host in the plan's queue: its tentative usage, its score, and its rank among equal scores. */
interface Candidate {
  host: HostCapacity;
  score: number;
  rank: number;
}

/** Better first: higher score, then lower rank. */
const before = (a: Candidate, b: Candidate) => a.score > b.score || (a.score === b.score && a.rank < b.rank);

/** A binary heap of candidates, best at the top. */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  push(c: Candidate): void {
    const a = this.items;
    a.push(c);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): Candidate | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < a.length && before(a[l]!, a[best]!)) best = l;
        if (r < a.length && before(a[r]!, a[best]!)) best = r;
        if (best === i) break;
        [a[i], a[best]] = [a[best]!, a[i]!];
        i = best;
      }
    }
    return top;
  }
}

export interface PlanOptions {
  filters?: readonly Filter[];
  /**
   * Orders hosts whose scores tie: lower first. Default: by id, so plans are
   * deterministic. Concurrent launches pass a random order, so that they do
   * not all pick the same hosts.
   */
  tieBreak?: (hostId: string) => number;
}

/**
 * Places up to req.maxCount instances, each on the best-scoring host that
 * passes every filter at that point (ties to the lowest `tieBreak`).
 * Postconditions: the input hosts are not mutated; no host in the plan
 * exceeds its capacity; hostIds.length is the number placed (possibly fewer
 * than maxCount, possibly 0). O((n + h) log h) for n instances on h hosts:
 * placing an instance changes only its host's score.
 */
export function planPlacement(hosts: readonly HostCapacity[], req: PlacementRequest, opts: PlanOptions = {}): PlacementPlan {
  const filters = opts.filters ?? defaultFilters;
  const dynamic = filters.filter((f) => f.dynamic);
  const weighers = weighersFor(req.strategy);
  const scoreOf = (h: HostCapacity) => weighers.reduce((s, w) => s + w.multiplier * w.score(h, req), 0);
  const order = [...hosts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const tentative = order.map((h) => ({ ...h }));
  const heap = new CandidateHeap();
  for (const [i, h] of tentative.entries()) {
    if (rejectionsFor(h, req, filters).length === 0) heap.push({ host: h, score: scoreOf(h), rank: opts.tieBreak ? opts.tieBreak(h.id) : i });
  }
  const hostIds: string[] = [];
  while (hostIds.length < req.maxCount) {
    const best = heap.pop();
    if (!best) break;
    const h = best.host;
    h.usedVcpus += req.vcpus;
    h.usedMemoryMib += req.memoryMib;
    h.usedDiskGib += req.diskGib;
    hostIds.push(h.id);
    if (rejectionsFor(h, req, dynamic).length === 0) heap.push({ ...best, score: scoreOf(h) });
  }
  const rejections: Record<string, string[]> = {};
  for (const h of tentative) {
    const why = rejectionsFor(h, req, filters);
    if (why.length) rejections[h.id] = why;
  }
  return { hostIds, rejections };
}
