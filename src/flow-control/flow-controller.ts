import type { FlowControlConfig } from '../config/flow-control-schema.js';
import type { BackendView } from '../fleet/backend.js';
import { createHeldRequests, type HeldRequest, type HeldRequestsStats, type HoldEnd } from './held-requests.js';
import { roomOf } from './saturation.js';
import { createTenantShares } from './tenant-shares.js';

export interface FlowRequest {
  model: string;
  priority: number;
  tenant: string;
}

/** How each held request's hold ended, for the metrics. */
export interface FlowObserver {
  ended(request: FlowRequest, end: HoldEnd): void;
}

export interface FlowController {
  /**
   * Whether a request must wait: flow control is on and its model's servers have no room for
   * it (every slot taken, or the last few kept for lighter tenants), or others of the model are
   * held already (it is then let go at once if its turn allows).
   */
  mustWait(request: FlowRequest, candidates: readonly BackendView[]): boolean;
  /**
   * Holds it until a server of its model has room (`done` runs synchronously then, so what it
   * routes counts before the next is let go) or it is shed. Returns a cancel for a client that left.
   */
  hold(request: FlowRequest, done: (end: HoldEnd) => void): () => void;
  /** A request was routed: it counts for its tenant until the returned function runs (its end, which may free room). */
  started(request: FlowRequest): () => void;
  stats(): HeldRequestsStats & { enabled: boolean };
  stop(): void;
}

/** How often held requests are looked at while any are held (room also frees when our own requests end). */
const TICK_MS = 20;

export function createFlowController(deps: {
  config: () => FlowControlConfig;
  /** Every backend serving a model. */
  candidates: (model: string) => readonly BackendView[];
  observer?: FlowObserver;
  /** A request's continuation threw (it is answered by whoever catches it next: the stream's end). */
  onError?: (err: Error) => void;
  now?: () => number;
}): FlowController {
  const now = deps.now ?? Date.now;
  const held = createHeldRequests(() => deps.config().maxQueued);
  const shares = createTenantShares();
  let timer: NodeJS.Timeout | undefined;

  const canRun = (request: FlowRequest, candidates: readonly BackendView[], t: number): boolean => {
    const room = roomOf(candidates);
    return !room.routable || room.free > shares.headroom(request.model, request.tenant, room.slots, t);
  };
  const tick = () => {
    const t = now();
    held.expire(t);
    held.releaseWhile((request) => canRun(request, deps.candidates(request.model), t), t);
    if (held.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  return {
    mustWait(request, candidates) {
      if (!deps.config().enabled) return false;
      return held.heldFor(request.model) > 0 || !canRun(request, candidates, now());
    },
    hold(request, done) {
      const t = now();
      shares.seen(request.model, request.tenant, t);
      let over = false;
      const entry: HeldRequest = {
        ...request,
        deadlineMs: t + deps.config().maxWaitMs,
        resume(end) {
          over = true;
          deps.observer?.ended(request, end);
          // Run from the timer too: a failure here must not take the process down.
          try {
            done(end);
          } catch (err) {
            deps.onError?.(err as Error);
          }
        },
      };
      if (!held.hold(entry, t)) {
        entry.resume({ kind: 'shed', reason: 'queue-full', waitedMs: 0 });
        return () => {};
      }
      timer ??= setInterval(tick, TICK_MS).unref();
      // Held behind others, it may still go now: its tenant's turn, or room kept for its tenant.
      tick();
      return () => {
        if (!over && held.cancel(entry)) deps.observer?.ended(request, { kind: 'shed', reason: 'client-gone', waitedMs: now() - t });
      };
    },
    started(request) {
      if (!deps.config().enabled) return () => {};
      shares.started(request.model, request.tenant, now());
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        shares.ended(request.model, request.tenant, now());
        if (held.size > 0) tick();
      };
    },
    stats: () => ({ enabled: deps.config().enabled, ...held.stats() }),
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
