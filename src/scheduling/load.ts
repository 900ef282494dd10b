import type { BackendView } from '../fleet/backend.js';

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
  const reported = m.running + weights.waitingWeight * m.waiting + activeUnseen(backend);
  return Math.max(own, reported) / backend.capacity + weights.kvCacheWeight * (m.kvCacheUsage ?? 0);
}

/**
 * Requests we routed since the last scrape that are still in flight. Those already finished
 * are no load; counting them would make a server that answers quickly look busy.
 */
export function activeUnseen(b: BackendView): number {
  return Math.min(b.unseenDispatches, b.inflight);
}

/** Estimated running and waiting requests, and whether a new one would wait for a slot. */
export function estimateQueue(b: BackendView): { running: number; waiting: number; full: boolean } {
  let running: number;
  let waiting: number;
  if (b.metrics) {
    running = b.metrics.running;
    waiting = b.metrics.waiting;
    const unseen = activeUnseen(b);
    const free = b.queueing ? 0 : Math.max(0, b.capacity - running);
    const admitted = Math.min(unseen, free);
    running += admitted;
    waiting += unseen - admitted;
  } else {
    // No fresh figures: our own in-flight count is all we know, and it is a floor.
    running = Math.min(b.inflight, b.capacity);
    waiting = b.inflight - running;
  }
  const shortfall = b.inflight - (running + waiting);
  if (shortfall > 0) {
    if (running + shortfall <= b.capacity) running += shortfall;
    else waiting += shortfall;
  }
  return { running, waiting, full: b.queueing || running >= b.capacity };
}
