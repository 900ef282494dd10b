import { estimateQueue } from '../load.js';
import type { Filter } from '../types.js';

/**
 * Sheds load instead of queueing without bound: drops backends whose waiting queue has
 * reached `maxWaiting`; when that leaves none, the client is told the fleet is overloaded (a 429) it can retry with
 * backoff, rather than a request that waits behind minutes of work.
 */
export function createQueueLimitFilter(maxWaiting: number): Filter {
  return {
    name: 'queue-limit',
    filter: (_request, backends) => backends.filter((b) => estimateQueue(b).waiting < maxWaiting),
    rejection: () => ({ code: 'server_overloaded', maxWaiting }),
  };
}
