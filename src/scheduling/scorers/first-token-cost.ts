import { estimateQueue } from '../load.js';
import type { Scorer } from '../types.js';

export interface FirstTokenCostSettings {
  /**
   * What waiting behind one queued request costs, in prefill-token equivalents: roughly how
   * long a busy server takes to free a slot, times its prefill rate.
   */
  queuedRequestTokens: number;
  /** What each running sequence adds, in prefill-token equivalents (it shares every step). */
  runningRequestTokens: number;
  /**
   * How much a prefill into a full cache costs again later: the blocks it evicts were
   * someone's cached prefix. 1 counts evicted tokens as fully lost work when the backend's
   * cache is hit for every token; the backend's own recent hit share scales it down.
   */
  evictionWeight: number;
}

/**
 * Scores each backend by the work standing between this request and its first token,
 * measured in prefill tokens: the part of the prompt the backend does not already hold in its
 * KV cache, plus the queue ahead (each queued request's own prefill and the wait for a free
 * slot), plus the drag of the sequences it is already running, plus, when its cache is full,
 * the cached prefixes the new blocks will evict (work someone will redo). Cache affinity and load are
 * traded in one unit instead of by tuned weights: a shared system prompt draws traffic to the
 * server that holds it only until queueing there costs more than prefilling it elsewhere,
 * after which a second server caches it too.
 */
export function createFirstTokenCostScorer(settings: FirstTokenCostSettings, meanUncached: Map<string, number>): Scorer {
  // meanUncached: mean uncached prompt tokens of what we sent to each backend (its queue's
  // prefill work), kept by the scheduler's memory across reloads.

  const costs = (input: Parameters<Scorer['score']>[0]) => {
    const prompt = input.promptTokens();
    const cached = input.cachedTokens();
    const fullness = input.cacheFullness();
    return input.backends.map((b, i) => {
      const uncached = Math.max(1, prompt - cached[i]!);
      // Evicted blocks are lost work only as often as that cache's blocks are hit: on a server
      // whose prompts share nothing, a full cache costs nothing, and tiny differences in how
      // full two such caches look must not outweigh their queues. Unknown yet: assume hit.
      const eviction = uncached * fullness[i]! * settings.evictionWeight * (b.recent.prefixHitShare ?? 1);
      const { running, waiting, full } = estimateQueue(b);
      // Queued requests' prefill runs before ours; when the server is full we also wait for
      // a slot behind each of them.
      const queuedPrefill = waiting * (meanUncached.get(b.id) ?? prompt);
      const slotWait = full ? (waiting + 1) * settings.queuedRequestTokens : 0;
      return uncached + eviction + queuedPrefill + slotWait + running * settings.runningRequestTokens;
    });
  };

  return {
    name: 'first-token-cost',
    score(input) {
      const c = costs(input);
      const min = Math.min(...c);
      return c.map((cost) => min / cost);
    },
    picked(input, backend) {
      const i = input.backends.indexOf(backend);
      const uncached = Math.max(1, input.promptTokens() - (i >= 0 ? input.cachedTokens()[i]! : 0));
      const previous = meanUncached.get(backend.id);
      meanUncached.set(backend.id, previous === undefined ? uncached : previous + 0.1 * (uncached - previous));
    },
  };
}
