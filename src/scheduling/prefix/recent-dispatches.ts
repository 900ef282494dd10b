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

/** Pending prompts remembered per backend; the oldest go first beyond it. */
const MAX_PER_BACKEND = 256;

interface Pending {
  hashes: Float64Array;
  until: number;
}

export function createRecentDispatches(): RecentDispatches {
  const byBackend = new Map<string, Pending[]>();
  const live = (backend: string, now: number) => {
    const list = byBackend.get(backend);
    if (!list) return [];
    let expired = 0;
    while (expired < list.length && list[expired]!.until < now) expired++;
    if (expired > 0) list.splice(0, expired);
    return list;
  };
  return {
    record(backend, hashes, now, until) {
      if (hashes.length === 0) return;
      let list = byBackend.get(backend);
      if (!list) byBackend.set(backend, (list = []));
      // Kept in expiry order, so expired ones are at the front.
      let at = list.length;
      while (at > 0 && list[at - 1]!.until > until) at--;
      list.splice(at, 0, { hashes, until });
      if (list.length > MAX_PER_BACKEND) list.shift();
      live(backend, now);
    },
    match(backend, hashes, now) {
      let best = 0;
      for (const pending of live(backend, now)) {
        const n = Math.min(hashes.length, pending.hashes.length);
        let k = 0;
        while (k < n && pending.hashes[k] === hashes[k]) k++;
        if (k > best) best = k;
      }
      return best;
    },
    retain(keep) {
      for (const id of byBackend.keys()) if (!keep.has(id)) byBackend.delete(id);
    },
  };
}
