import { isRoutable, type BackendView } from '../fleet/backend.js';
import { estimateQueue } from '../scheduling/load.js';

/**
 * A server is saturated when all its slots are taken (as learned from its metrics) and a
 * request already waits there: one more would only queue inside it, first come first served.
 * One waiting is left to it so that a slot freed is refilled within a step, without a round
 * trip through the router.
 */
export function isSaturated(backend: BackendView): boolean {
  const queue = estimateQueue(backend);
  return queue.full && queue.waiting >= 1;
}

/** Whether a server of the model can take a request now without queueing it. */
export function hasRoom(candidates: readonly BackendView[]): boolean {
  return candidates.some((b) => isRoutable(b) && !isSaturated(b));
}
