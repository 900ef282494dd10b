/**
 * Requests the router holds while every server of their model is saturated: in priority bands
 * (a higher band is always let go first), and within a band round robin over tenants, each
 * tenant first come, first served, so a tenant sending ten times as much waits its own turn
 * instead of everyone's. Bounded: beyond `maxQueued` the lowest band is shed first, the
 * tenant holding most of it losing its newest request.
 */
export interface HeldRequest {
  model: string;
  priority: number;
  tenant: string;
  /** When it has waited long enough (the per-request wait limit), in clock ms. */
  deadlineMs: number;
  /** Called once: let go (the caller routes it now) or shed (the caller answers 429). */
  resume(end: HoldEnd): void;
}

export type ShedReason = 'queue-full' | 'wait-limit' | 'displaced' | 'client-gone';
export type HoldEnd = { kind: 'release'; waitedMs: number } | { kind: 'shed'; reason: ShedReason; waitedMs: number };

export interface HeldRequestsStats {
  queued: number;
  bands: Array<{ priority: number; tenants: Array<{ tenant: string; queued: number }> }>;
}

export interface HeldRequests {
  /** Holds it; false when it cannot be (full, and nothing of a lower band to shed for it). */
  hold(request: HeldRequest, nowMs: number): boolean;
  /** Lets requests go, highest band first, while `canRun(request)` says a server of its model can take it. */
  releaseWhile(canRun: (request: HeldRequest) => boolean, nowMs: number): number;
  /** Sheds requests that waited past their deadline. */
  expire(nowMs: number): number;
  /** Forgets a request whose client went away; false if it was not held. */
  cancel(request: HeldRequest): boolean;
  /** Held requests of a model (new ones queue behind them). */
  heldFor(model: string): number;
  readonly size: number;
  stats(): HeldRequestsStats;
}

interface Entry {
  request: HeldRequest;
  heldAtMs: number;
}

/** One priority band: a queue per tenant, and the round robin's place among tenants. */
interface Band {
  priority: number;
  tenants: Map<string, Entry[]>;
  /** Tenants in the order they take turns; `next` is whose turn it is. */
  order: string[];
  next: number;
}

export function createHeldRequests(maxQueued: () => number): HeldRequests {
  /** Highest priority first. */
  const bands: Band[] = [];
  const byModel = new Map<string, number>();
  let size = 0;

  const countModel = (model: string, delta: number) => {
    const n = (byModel.get(model) ?? 0) + delta;
    if (n > 0) byModel.set(model, n);
    else byModel.delete(model);
  };

  function bandOf(priority: number): Band {
    let at = bands.findIndex((b) => b.priority <= priority);
    if (at >= 0 && bands[at]!.priority === priority) return bands[at]!;
    if (at < 0) at = bands.length;
    const band: Band = { priority, tenants: new Map(), order: [], next: 0 };
    bands.splice(at, 0, band);
    return band;
  }

  /** Takes entry `index` of `tenant`'s queue in `band` out, dropping emptied queues and bands. */
  function take(band: Band, tenant: string, index: number): Entry {
    const queue = band.tenants.get(tenant)!;
    const [entry] = queue.splice(index, 1);
    if (queue.length === 0) {
      band.tenants.delete(tenant);
      const at = band.order.indexOf(tenant);
      band.order.splice(at, 1);
      if (band.next > at) band.next--;
      if (band.next >= band.order.length) band.next = 0;
    }
    if (band.tenants.size === 0) bands.splice(bands.indexOf(band), 1);
    size--;
    countModel(entry!.request.model, -1);
    return entry!;
  }

  /** The newest request of the tenant holding most of the lowest band. */
  function shedLowest(nowMs: number): void {
    const band = bands[bands.length - 1]!;
    let heaviest = band.order[0]!;
    for (const tenant of band.order) if (band.tenants.get(tenant)!.length > band.tenants.get(heaviest)!.length) heaviest = tenant;
    const entry = take(band, heaviest, band.tenants.get(heaviest)!.length - 1);
    entry.request.resume({ kind: 'shed', reason: 'displaced', waitedMs: nowMs - entry.heldAtMs });
  }

  return {
    hold(request, nowMs) {
      if (size >= maxQueued()) {
        const lowest = bands[bands.length - 1];
        if (!lowest || lowest.priority >= request.priority) return false;
        shedLowest(nowMs);
      }
      const band = bandOf(request.priority);
      let queue = band.tenants.get(request.tenant);
      if (!queue) {
        band.tenants.set(request.tenant, (queue = []));
        band.order.push(request.tenant);
      }
      queue.push({ request, heldAtMs: nowMs });
      size++;
      countModel(request.model, 1);
      return true;
    },
    releaseWhile(canRun, nowMs) {
      let released = 0;
      // Letting a request go only adds load: a model found saturated for a tenant stays so for this pass.
      const saturated = new Set<string>();
      const runnable = (request: HeldRequest) => {
        const key = `${request.model}\0${request.tenant}`;
        return !saturated.has(key) && (canRun(request) || (saturated.add(key), false));
      };
      next: for (;;) {
        for (const band of bands) {
          for (let turn = 0; turn < band.order.length; turn++) {
            const at = (band.next + turn) % band.order.length;
            const tenant = band.order[at]!;
            const index = band.tenants.get(tenant)!.findIndex((e) => runnable(e.request));
            if (index < 0) continue;
            // The following tenant's turn next, whether or not this one has more.
            band.next = (at + 1) % band.order.length;
            const entry = take(band, tenant, index);
            entry.request.resume({ kind: 'release', waitedMs: nowMs - entry.heldAtMs });
            released++;
            // From the top again: a higher band always goes first.
            continue next;
          }
        }
        return released;
      }
    },
    expire(nowMs) {
      let shed = 0;
      for (const band of [...bands]) {
        for (const tenant of [...band.order]) {
          const queue = band.tenants.get(tenant);
          for (let i = (queue?.length ?? 0) - 1; i >= 0; i--) {
            if (queue![i]!.request.deadlineMs > nowMs) continue;
            const entry = take(band, tenant, i);
            entry.request.resume({ kind: 'shed', reason: 'wait-limit', waitedMs: nowMs - entry.heldAtMs });
            shed++;
          }
        }
      }
      return shed;
    },
    cancel(request) {
      for (const band of bands) {
        const queue = band.tenants.get(request.tenant);
        const index = queue?.findIndex((e) => e.request === request) ?? -1;
        if (index >= 0) {
          take(band, request.tenant, index);
          return true;
        }
      }
      return false;
    },
    heldFor: (model) => byModel.get(model) ?? 0,
    get size() {
      return size;
    },
    stats: () => ({
      queued: size,
      bands: bands.map((b) => ({ priority: b.priority, tenants: b.order.map((tenant) => ({ tenant, queued: b.tenants.get(tenant)!.length })) })),
    }),
  };
}
