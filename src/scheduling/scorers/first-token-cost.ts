import type { BackendView } from '../../fleet/backend.js';
import type { Scorer } from '../types.js';

export interface FirstTokenCostSettings {
  /**
   * How much a second of waiting for a slot on a full backend counts: 1 for the request's own
   * wait, plus the wait it passes on to the requests that will queue behind it.
   */
  queueWaitWeight: number;
  /**
   * How much a second of delay added to requests already streaming (our prefill stalls their
   * next token, each running sequence slows every step) counts against a second of the new
   * request's own wait for its first token.
   */
  streamingDelayWeight: number;
  /**
   * How much a prefill into a full cache costs again later: the blocks it evicts were
   * someone's cached prefix. 1 counts evicted tokens as fully lost work when the backend's
   * cache is hit for every token; the backend's own recent hit share scales it down.
   */
  evictionWeight: number;
}

/** Share of prompt tokens the candidates' caches served lately; 1 (reused) until known. */
function reuseShare(backends: readonly BackendView[]): number {
  let sum = 0;
  let known = 0;
  for (const b of backends) {
    if (b.recent.prefixHitShare === undefined) continue;
    sum += b.recent.prefixHitShare;
    known++;
  }
  return known === 0 ? 1 : sum / known;
}

/**
 * Scores each backend by the seconds the request would cost there, priced with that
 * backend's own measured speed (scheduling/service-time.ts): its time to first token (the
 * queue ahead, and the prefill of the part of the prompt the backend does not already hold),
 * what it adds to the requests running there, when the cache is full, the prefill someone
 * will redo for the cached prefixes it evicts, and the prefill replicas would redo if they
 * scattered a reused prompt (rendezvous placement). Cache affinity and load are traded in one unit, measured rather than tuned: a shared system prompt
 * draws traffic to the server that holds it only while queueing there costs less than
 * prefilling it elsewhere, and a server three times slower costs three times as much.
 */
export function createFirstTokenCostScorer(settings: FirstTokenCostSettings): Scorer {
  return {
    name: 'first-token-cost',
    score(input) {
      const fullness = input.cacheFullness();
      const ranks = input.placementRanks();
      const reuse = ranks ? reuseShare(input.backends) : 0;
      const lastRank = Math.max(1, input.backends.length - 1);
      const adapterWaits = input.adapterWaits();
      const costs = input.serviceTimes().map((t, i) => {
        const b = input.backends[i]!;
        // Its new blocks evict as many; evicted blocks are lost work only as often as that
        // cache's blocks are hit: on a server whose prompts share nothing, a full cache costs
        // nothing. Unknown yet: assume hit.
        const evictionS = t.ownPrefillS * fullness[i]! * settings.evictionWeight * (b.recent.prefixHitShare ?? 1);
        // Other replicas put a prompt where rendezvous says, and spill it in the same order: the
        // further down that order, the likelier its prefill (lost work as often as prompts are
        // reused: the fleet's hit share) is done again only because this replica went there.
        const scatterS = ranks ? (t.ownPrefillS * reuse * ranks[i]!) / lastRank : 0;
        // A request for a LoRA adapter waits for it where it is not at work (scheduling/adapters.ts).
        const adapterS = adapterWaits[i]!;
        return t.firstTokenS + adapterS + (settings.queueWaitWeight - 1) * t.slotWaitS + settings.streamingDelayWeight * t.dragS + evictionS + scatterS;
      });
      const min = Math.min(...costs);
      return costs.map((cost) => min / cost);
    },
  };
}
