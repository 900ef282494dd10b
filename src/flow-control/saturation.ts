import { isRoutable, type BackendView } from '../fleet/backend.js';
import { estimateQueue } from '../scheduling/load.js';

export interface Room {
  /** Slots free now, over the model's servers in rotation (a queueing server has none). */
  free: number;
  /** Every slot of those servers, as learned from their metrics. */
  slots: number;
  /** Whether any server of the model is in rotation (if none, the scheduler answers 503 at once, not after the wait limit). */
  routable: boolean;
}

/**
 * The room a model's servers have for requests that would not queue inside them: a server is
 * full when all its slots are taken (as learned from its metrics), as one more would only
 * queue there, first come first served. Leaving one waiting there (refilling a freed slot
 * within a step) was tried: a light tenant's requests then waited behind it, 231 ms against
 * 134 ms at p50 (bench:flow --quick).
 */
export function roomOf(candidates: readonly BackendView[]): Room {
  let free = 0;
  let slots = 0;
  let routable = false;
  for (const b of candidates) {
    if (!isRoutable(b)) continue;
    routable = true;
    slots += b.capacity;
    const queue = estimateQueue(b);
    // A queue there says it is full whatever its slots were thought to be (before they are learned, 256).
    if (queue.waiting === 0) free += queue.free;
  }
  return { free, slots, routable };
}
