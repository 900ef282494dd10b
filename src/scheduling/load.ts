import { activeUnseen, type BackendView } from '../fleet/backend.js';

export interface LoadWeights {
  /** A queued request counts this much relative to a running one. */
  waitingWeight: number;
  /** KV-cache usage (0..1) adds this many capacities' worth of load. */
  kvCacheWeight: number;
}

/**
 * A backend's load as a fraction of its capacity. Between scrapes the last figures are
 * topped up with what we routed there since; without fresh figures our own in-flight count
 * is the floor, so a backend whose metrics are missing never looks idle.
 */
export function estimateLoad(backend: BackendView, weights: LoadWeights): number {
  const own = backend.inflight;
  const m = backend.metrics;
  if (!m) return own / backend.capacity;
  const now = reportedNow(backend, m);
  const reported = now.running + weights.waitingWeight * now.waiting + activeUnseen(backend);
  return Math.max(own, reported) / backend.capacity + weights.kvCacheWeight * (m.kvCacheUsage ?? 0);
}

/**
 * The last figures less the requests in them that we have seen finish since: between scrapes
 * a server that has just answered must not look as busy as when it was read. A finished
 * request frees a slot that a waiting one takes, so the queue shrinks first. Other routers'
 * traffic shows only at the next scrape.
 */
function reportedNow(b: BackendView, m: NonNullable<BackendView['metrics']>): { running: number; waiting: number; freed: number } {
  // Of our finishes since the scrape began, those of requests sent after it were never in it.
  const finishedUnseen = b.unseenDispatches - activeUnseen(b);
  const gone = Math.max(0, b.unseenFinishes - finishedUnseen);
  const fromQueue = Math.min(m.waiting, gone);
  const freed = gone - fromQueue;
  let running = Math.max(0, m.running - freed);
  let waiting = m.waiting - fromQueue;
  // Beyond our requests it held when read, the figures count other clients' requests, or ours
  // counted early or late (its gauges trail its work by a step): keep others' share of the
  // excess, and whatever of it lasted from the scrape before (work from elsewhere still
  // there), so a server only we send to is judged by our own exact counts, as Envoy's
  // least-request is. Until that share is known, all of the excess counts.
  const othersShare = b.recent.othersShare ?? 1;
  const excess = running + waiting - (b.inflight - activeUnseen(b));
  const keep = Math.max(excess * othersShare, Math.min(excess, b.lastingExcess));
  if (excess > keep) {
    const drop = excess - keep;
    const fromWaiting = Math.min(waiting, drop);
    waiting -= fromWaiting;
    running -= drop - fromWaiting;
  }
  return { running, waiting, freed };
}

/**
 * Estimated running and waiting requests, whether a new one would wait for a slot, and how
 * many slots are free for it now.
 */
export function estimateQueue(b: BackendView): { running: number; waiting: number; full: boolean; free: number } {
  let running: number;
  let waiting: number;
  let room: number;
  if (b.metrics) {
    let freed: number;
    ({ running, waiting, freed } = reportedNow(b, b.metrics));
    // A server saturated when read (whatever its slots were thought to be) has room since
    // only for the slots our finishes freed beyond its queue: it ran all it could then.
    // (Holding it full until the next scrape priced a slot wait of 100 ms for requests that
    // a drained server took at once.)
    room = Math.max(0, b.capacity - running);
    if (b.queueing) room = Math.min(room, freed);
    const unseen = activeUnseen(b);
    const admitted = Math.min(unseen, room);
    running += admitted;
    waiting += unseen - admitted;
    room -= admitted;
  } else {
    // No fresh figures: our own in-flight count is all we know, and it is a floor.
    running = Math.min(b.inflight, b.capacity);
    waiting = b.inflight - running;
    room = b.capacity - running;
  }
  const shortfall = b.inflight - (running + waiting);
  if (shortfall > 0) {
    const admitted = Math.min(shortfall, room);
    running += admitted;
    waiting += shortfall - admitted;
    room -= admitted;
  }
  // Room never exceeds capacity less running (each admission takes from both): at capacity, none.
  return { running, waiting, full: room <= 0, free: room };
}
