// Placement as pure functions: filters say whether (and why not) a host can
// take one more instance; weighers score the hosts that pass; `planPlacement`
// places instances one by one on tentative usage, so a single call never
// overcommits. Committing the plan is the caller's job, in the transaction
// that locked these hosts' rows (see commit.ts).

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

/**
 * Places up to req.maxCount instances. Postconditions: the input hosts are not
 * mutated; no host in the plan exceeds its capacity; hostIds.length is the
 * number placed (possibly fewer than maxCount, possibly 0).
 */
export function planPlacement(hosts: readonly HostCapacity[], req: PlacementRequest, filters: readonly Filter[] = defaultFilters): PlacementPlan {
  const tentative = hosts.map((h) => ({ ...h }));
  const weighers = weighersFor(req.strategy);
  const hostIds: string[] = [];
  while (hostIds.length < req.maxCount) {
    let best: HostCapacity | undefined;
    let bestScore = -Infinity;
    for (const h of tentative) {
      if (rejectionsFor(h, req, filters).length) continue;
      const score = weighers.reduce((s, w) => s + w.multiplier * w.score(h, req), 0);
      // Ties go to the lowest id so that plans are deterministic.
      if (score > bestScore || (score === bestScore && best && h.id < best.id)) {
        best = h;
        bestScore = score;
      }
    }
    if (!best) break;
    best.usedVcpus += req.vcpus;
    best.usedMemoryMib += req.memoryMib;
    best.usedDiskGib += req.diskGib;
    hostIds.push(best.id);
  }
  const rejections: Record<string, string[]> = {};
  for (const h of tentative) {
    const why = rejectionsFor(h, req, filters);
    if (why.length) rejections[h.id] = why;
  }
  return { hostIds, rejections };
}
