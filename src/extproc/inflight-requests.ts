/**
 * The requests whose ext_proc stream is still open, by the backend they were routed to. When a
 * backend stops answering (its health probes fail), nothing in Envoy ends the requests it
 * holds: no byte arrives, and no timeout can tell a wedged server from a long prefill. The
 * router can: it ends each of them through its open stream.
 */
export interface InflightRequests {
  /** Registers a request routed to `backend`; `end` answers it. Returns the unregistration. */
  track(backend: string, end: () => void): () => void;
  /** Ends every request in flight on `backend`; returns how many. */
  endAll(backend: string): number;
}

export function createInflightRequests(): InflightRequests {
  const byBackend = new Map<string, Set<() => void>>();
  return {
    track(backend, end) {
      let set = byBackend.get(backend);
      if (!set) byBackend.set(backend, (set = new Set()));
      set.add(end);
      return () => {
        set.delete(end);
        if (set.size === 0 && byBackend.get(backend) === set) byBackend.delete(backend);
      };
    },
    endAll(backend) {
      const set = byBackend.get(backend);
      if (!set) return 0;
      byBackend.delete(backend);
      const ends = [...set];
      for (const end of ends) end();
      return ends.length;
    },
  };
}
