/**
 * One KV event subscriber per publisher of every backend whose config (or discovery group)
 * names one (a data-parallel server has one publisher per rank), kept in step with the fleet:
 * started when such a backend appears, restarted when its endpoints change, closed when it
 * goes. What arrives goes to the sink the router wires to the precise prefix index; each
 * backend's `cacheEvents` is its subscribers' live status, combined.
 */
import type { Logger } from '../support/log.js';
import type { Backend } from './backend.js';
import { startKvEventSubscriber, type KvEventSink, type KvEventState, type KvEventStatus, type KvEventSubscriber } from './kv-events/subscriber.js';

export interface KvEventSources {
  sync(backends: readonly Backend[]): void;
  /** Marks followed streams silent while their server gets work as stale (runs every second by itself). */
  checkStaleness(): void;
  stop(): Promise<void>;
}

interface Running {
  key: string;
  ranks: Array<{ sink: KvEventSink; subscriber: Promise<KvEventSubscriber | undefined> }>;
}

/** The endpoint data-parallel rank `rank` publishes on, as vLLM derives it: the tcp port plus the rank. */
export function rankEndpoint(endpoint: string, rank: number): string {
  if (rank === 0) return endpoint;
  const colon = endpoint.lastIndexOf(':');
  return `${endpoint.slice(0, colon)}:${Number(endpoint.slice(colon + 1)) + rank}`;
}

/**
 * A stream is stale when this many requests were routed to its server over this long without
 * a single batch: prefilling a prompt stores blocks, so a working engine publishes. (A burst of
 * prompts shorter than a block stores none; the price of a false alarm is only the guess
 * weighing in beside the events until the next batch.)
 */
export const STALE_AFTER_REQUESTS = 32;
export const STALE_AFTER_MS = 15_000;

/** Least complete first: a server is only as well known as its least known rank. */
const STATE_ORDER: readonly KvEventState[] = ['closed', 'connecting', 'replaying', 'partial', 'live'];

/** Several ranks' statuses read as one: the least complete state, counts summed, the latest batch. */
export function combinedStatus(ranks: ReadonlyArray<Readonly<KvEventStatus>>): Readonly<KvEventStatus> {
  const sum = (k: 'batches' | 'gaps' | 'replays' | 'restarts' | 'malformed') => ranks.reduce((a, s) => a + s[k], 0);
  const latest = (k: 'lastSequence' | 'lastBatchAt') => ranks.reduce<number | null>((a, s) => (s[k] === null ? a : Math.max(a ?? -Infinity, s[k])), null);
  return {
    get state() {
      return STATE_ORDER.find((state) => ranks.some((s) => s.state === state)) ?? 'closed';
    },
    get lastSequence() {
      return latest('lastSequence');
    },
    get lastBatchAt() {
      return latest('lastBatchAt');
    },
    get batches() {
      return sum('batches');
    },
    get gaps() {
      return sum('gaps');
    },
    get replays() {
      return sum('replays');
    },
    get restarts() {
      return sum('restarts');
    },
    get malformed() {
      return sum('malformed');
    },
    get lastError() {
      return ranks.find((s) => s.lastError !== null)?.lastError ?? null;
    },
  };
}

/** `sinkFor` is asked once per publisher (a backend's rank), and that sink serves it until it closes. */
export function createKvEventSources(options: { sinkFor(backendId: string, rank: number): KvEventSink; logger: Logger; now?: () => number }): KvEventSources {
  const { sinkFor, logger } = options;
  const now = options.now ?? Date.now;
  const running = new Map<string, Running>();
  // Per backend: its stream's batch count and our routed count when that count last moved, and
  // when we were first seen sending it work after that.
  const marks = new Map<string, { batches: number; routed: number; busySince: number | undefined }>();
  let followed: readonly Backend[] = [];

  const checkStaleness = () => {
    const t = now();
    for (const b of followed) {
      const events = b.cacheEvents;
      if (!events) continue;
      const mark = marks.get(b.id);
      if (!mark || mark.batches !== events.batches) {
        marks.set(b.id, { batches: events.batches, routed: b.routed, busySince: undefined });
        if (b.cacheEventsStale) logger.info('KV events flowing again', { backend: b.id });
        b.cacheEventsStale = false;
        continue;
      }
      if (b.routed > mark.routed) mark.busySince ??= t;
      if (!b.cacheEventsStale && mark.busySince !== undefined && b.routed - mark.routed >= STALE_AFTER_REQUESTS && t - mark.busySince >= STALE_AFTER_MS) {
        b.cacheEventsStale = true;
        logger.warn('KV events stale: requests routed there but no batch since; its cache is scored by the events and the guess', {
          backend: b.id,
          requests: b.routed - mark.routed,
          silentMs: t - mark.busySince,
        });
      }
    }
  };
  const timer = setInterval(checkStaleness, 1_000);
  timer.unref();

  const close = (id: string, r: Running) => {
    running.delete(id);
    return Promise.all(
      r.ranks.map(async ({ sink, subscriber }) => {
        sink.reset();
        await (await subscriber)?.close();
      }),
    );
  };

  const follow = (b: Backend): Running => {
    const config = b.kvEventsConfig!;
    const size = config.dataParallelSize ?? 1;
    const ranks = Array.from({ length: size }, (_, rank) => {
      const endpoint = rankEndpoint(config.endpoint, rank);
      const source = { endpoint, bind: config.bind, topic: config.topic, ...(config.replayEndpoint ? { replayEndpoint: rankEndpoint(config.replayEndpoint, rank) } : {}) };
      const sink = sinkFor(b.id, rank);
      const subscriber = startKvEventSubscriber(source, sink).then(
        (s) => {
          logger.info('following KV events', { backend: b.id, endpoint, ...(size > 1 ? { rank } : {}) });
          return s;
        },
        (err: unknown) => {
          logger.warn('cannot follow KV events: scoring its cache by what was sent there', { backend: b.id, endpoint, error: err instanceof Error ? err.message : String(err) });
          return undefined;
        },
      );
      return { sink, subscriber };
    });
    // Known once every rank is followed; one rank that cannot be leaves the whole server to the guess.
    void Promise.all(ranks.map((r) => r.subscriber)).then((subscribers) => {
      if (running.get(b.id)?.ranks !== ranks || subscribers.some((s) => s === undefined)) return;
      const statuses = subscribers.map((s) => s!.status());
      b.cacheEvents = statuses.length === 1 ? statuses[0] : combinedStatus(statuses);
    });
    return { key: JSON.stringify(config), ranks };
  };

  return {
    sync(backends) {
      followed = backends.filter((b) => b.kvEventsConfig);
      const present = new Set<string>();
      for (const b of backends) {
        if (!b.kvEventsConfig) continue;
        present.add(b.id);
        const current = running.get(b.id);
        if (current?.key === JSON.stringify(b.kvEventsConfig)) continue;
        if (current) void close(b.id, current);
        running.set(b.id, follow(b));
      }
      for (const b of backends) {
        if (present.has(b.id)) continue;
        b.cacheEvents = undefined;
        b.cacheEventsStale = false;
        marks.delete(b.id);
      }
      for (const [id, r] of running) if (!present.has(id)) void close(id, r);
    },
    checkStaleness,
    async stop() {
      clearInterval(timer);
      await Promise.all([...running].map(([id, r]) => close(id, r)));
    },
  };
}
