/**
 * Prompts routed to each backend that its KV events may not show yet: a request's blocks are
 * stored as its prefill runs, so until its first token is due (as predicted, with a margin)
 * the events cannot report them. Counted beside the events, so that requests sharing a prompt
 * that arrive while the first one is queued or prefilling follow it instead of scattering.
 */
export interface RecentDispatches {
  record(backend: string, hashes: Float64Array, nowMs: number, untilMs: number): void;
  /** The most leading blocks of `hashes` that a request still pending on `backend` shares. */
  match(backend: string, hashes: Float64Array, nowMs: number): number;
  retain(keep: ReadonlySet<string>): void;
}

/**
 * Pending blocks remembered per backend; beyond it the expired go, then (a backend whose
 * requests are all far from due) the oldest recorded.
 */
const MAX_BLOCKS_PER_BACKEND = 1 << 16;
/** Below this many blocks a backend's map is not swept. */
const MIN_SWEEP_ABOVE = 1024;

/**
 * Per backend, each pending block's hash and when the last request holding it is due. The
 * hashes are chained, so a block's hash stands for its whole prefix: a prompt's match is the
 * run of its leading blocks found, one lookup each, however many requests are pending.
 */
export function createRecentDispatches(): RecentDispatches {
  const byBackend = new Map<string, { due: Map<number, number>; sweepAbove: number }>();
  /** Drops what is due; past the bound, the first recorded too (a Map iterates in insertion order). */
  const sweep = (pending: { due: Map<number, number>; sweepAbove: number }, now: number) => {
    const { due } = pending;
    for (const [hash, until] of due) if (until < now) due.delete(hash);
    for (const hash of due.keys()) {
      if (due.size <= MAX_BLOCKS_PER_BACKEND / 2) break;
      due.delete(hash);
    }
    // Swept again once it has doubled: amortized, and the map stays near what is pending.
    pending.sweepAbove = Math.max(MIN_SWEEP_ABOVE, 2 * due.size);
  };
  return {
    record(backend, hashes, now, until) {
      let pending = byBackend.get(backend);
      if (!pending) byBackend.set(backend, (pending = { due: new Map(), sweepAbove: MIN_SWEEP_ABOVE }));
      const { due } = pending;
      for (let i = 0; i < hashes.length; i++) {
        const hash = hashes[i]!;
        const previous = due.get(hash);
        if (previous === undefined || previous < until) {
          // Re-inserted, so that insertion order stays close to due order for the sweep.
          due.delete(hash);
          due.set(hash, until);
        }
      }
      if (due.size > pending.sweepAbove || due.size > MAX_BLOCKS_PER_BACKEND) sweep(pending, now);
    },
    match(backend, hashes, now) {
      const due = byBackend.get(backend)?.due;
      if (!due) return 0;
      let k = 0;
      while (k < hashes.length && (due.get(hashes[k]!) ?? -Infinity) >= now) k++;
      return k;
    },
    retain(keep) {
      for (const id of byBackend.keys()) if (!keep.has(id)) byBackend.delete(id);
    },
  };
}
