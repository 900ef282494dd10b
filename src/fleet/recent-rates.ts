import type { Backend, RecentRates } from './backend.js';

/** Half-life of the operator-facing rates: long enough to read, short enough to follow a change. */
const HALF_LIFE_MS = 30_000;

export function emptyRecentRates(now = Date.now()): RecentRates {
  return { prefixHitShare: undefined, routedPerSecond: 0, hits: 0, queries: 0, lastHits: undefined, lastQueries: undefined, lastRouted: 0, lastAt: now };
}

/** Decays the operator-facing rates and folds in what happened since the last scrape. */
export function updateRecentRates(backend: Backend, hits: number | undefined, queries: number | undefined): void {
  const r = backend.recent;
  const now = Date.now();
  const dt = Math.max(1, now - r.lastAt);
  const decay = 0.5 ** (dt / HALF_LIFE_MS);
  if (hits !== undefined && queries !== undefined && r.lastHits !== undefined && r.lastQueries !== undefined && queries >= r.lastQueries) {
    r.hits = r.hits * decay + Math.max(0, hits - r.lastHits);
    r.queries = r.queries * decay + (queries - r.lastQueries);
    r.prefixHitShare = r.queries > 0 ? r.hits / r.queries : r.prefixHitShare;
  }
  r.lastHits = hits;
  r.lastQueries = queries;
  const instant = ((backend.routed - r.lastRouted) * 1000) / dt;
  r.routedPerSecond = r.routedPerSecond * decay + instant * (1 - decay);
  r.lastRouted = backend.routed;
  r.lastAt = now;
}
