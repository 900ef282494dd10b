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

/**
 * Per backend, each pending block's hash and when the last request holding it is due. The
 * hashes are chained, so a block's hash stands for its whole prefix: a prompt's match is the
 * run of its leading blocks found, one lookup each, however many requests are pending.
 */
export function createRecentDispatches(): RecentDispatches {
  const byBackend = new Map<string, Map<number, number>>();
  const sweep = (due: Map<number, number>, now: number) => {
    for (const [hash, until] of due) if (until < now) due.delete(hash);
    // A Map iterates in insertion order: the first recorded go first.
    for (const hash of due.keys()) {
      if (due.size <= MAX_BLOCKS_PER_BACKEND / 2) break;
      due.delete(hash);
    }
  };
  return {
    record(backend, hashes, now, until) {
      let due = byBackend.get(backend);
      if (!due) byBackend.set(backend, (due = new Map()));
      for (let i = 0; i < hashes.length; i++) {
        const hash = hashes[i]!;
        const previous = due.get(hash);
        if (previous === undefined || previous < until) {
          // Re-inserted, so that insertion order stays close to due order for the sweep.
          due.delete(hash);
          due.set(hash, until);
        }
      }
      if (due.size > MAX_BLOCKS_PER_BACKEND) sweep(due, now);
    },
    match(backend, hashes, now) {
      const due = byBackend.get(backend);
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
