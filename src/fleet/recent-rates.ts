import type { Backend, RecentRates } from './backend.js';
import type { VllmLoad } from './vllm-metrics.js';

/** Half-life of the operator-facing rates: long enough to read, short enough to follow a change. */
const HALF_LIFE_MS = 30_000;

export function emptyRecentRates(now = Date.now()): RecentRates {
  return {
    prefixHitShare: undefined,
    othersShare: undefined,
    routedPerSecond: 0,
    hits: 0,
    queries: 0,
    completed: 0,
    completedByOthers: 0,
    lastHits: undefined,
    lastQueries: undefined,
    lastCompleted: undefined,
    lastByOthers: 0,
    lastFinished: 0,
    lastRouted: 0,
    lastAt: now,
  };
}

/** Decays the rates and folds in what happened since the last scrape (its counters, and ours). */
export function updateRecentRates(backend: Backend, counters: Pick<VllmLoad, 'prefixCacheHits' | 'prefixCacheQueries' | 'requestsCompleted'>): void {
  const { prefixCacheHits: hits, prefixCacheQueries: queries, requestsCompleted: completed } = counters;
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
  // What it completed beyond what we saw finish there came from someone else. Our count of a
  // request trails the server's by the end of its response, so a surplus of ours makes up for
  // the previous scrape's excess; beyond that it is requests cut short, which it never counts.
  if (completed !== undefined && r.lastCompleted !== undefined && completed >= r.lastCompleted) {
    const done = completed - r.lastCompleted;
    const beyondOurs = done - (backend.finished - r.lastFinished);
    const byOthers = beyondOurs >= 0 ? beyondOurs : -Math.min(-beyondOurs, r.lastByOthers);
    r.completed = r.completed * decay + done;
    r.completedByOthers = Math.max(0, r.completedByOthers * decay + byOthers);
    r.lastByOthers = Math.max(0, beyondOurs);
    r.othersShare = r.completed > 0 ? r.completedByOthers / r.completed : r.othersShare;
  }
  r.lastCompleted = completed;
  r.lastFinished = backend.finished;
  const instant = ((backend.routed - r.lastRouted) * 1000) / dt;
  r.routedPerSecond = r.routedPerSecond * decay + instant * (1 - decay);
  r.lastRouted = backend.routed;
  r.lastAt = now;
}
