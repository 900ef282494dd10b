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
  // Routed since the scrape and still in flight (finished ones are no load).
  const reported = m.running + weights.waitingWeight * m.waiting + Math.min(backend.unseenDispatches, own);
  return Math.max(own, reported) / backend.capacity + weights.kvCacheWeight * (m.kvCacheUsage ?? 0);
}
