/**
 * One KV event subscriber per backend whose config (or discovery group) names a publisher,
 * kept in step with the fleet: started when such a backend appears, restarted when its
 * endpoints change, closed when it goes. What arrives goes to the sink the router wires to
 * the precise prefix index; each backend's `cacheEvents` is its subscriber's live status.
 */
import type { Logger } from '../support/log.js';
import type { Backend } from './backend.js';
import { startKvEventSubscriber, type KvEventSink, type KvEventSubscriber } from './kv-events/subscriber.js';

export interface KvEventSources {
  sync(backends: readonly Backend[]): void;
  stop(): Promise<void>;
}

interface Running {
  key: string;
  subscriber: Promise<KvEventSubscriber | undefined>;
}

export function createKvEventSources(options: { sinkFor(backendId: string): KvEventSink; logger: Logger }): KvEventSources {
  const { sinkFor, logger } = options;
  const running = new Map<string, Running>();

  const close = (id: string, r: Running) => {
    running.delete(id);
    sinkFor(id).reset();
    return r.subscriber.then((s) => s?.close());
  };

  return {
    sync(backends) {
      const present = new Set<string>();
      for (const b of backends) {
        const config = b.kvEventsConfig;
        if (!config) continue;
        present.add(b.id);
        const key = JSON.stringify(config);
        const current = running.get(b.id);
        if (current?.key === key) continue;
        if (current) void close(b.id, current);
        const subscriber = startKvEventSubscriber({ endpoint: config.endpoint, bind: config.bind, replayEndpoint: config.replayEndpoint, topic: config.topic }, sinkFor(b.id)).then(
          (s) => {
            b.cacheEvents = s.status();
            logger.info('following KV events', { backend: b.id, endpoint: config.endpoint });
            return s;
          },
          (err: unknown) => {
            logger.warn('cannot follow KV events: scoring its cache by what was sent there', { backend: b.id, endpoint: config.endpoint, error: err instanceof Error ? err.message : String(err) });
            return undefined;
          },
        );
        running.set(b.id, { key, subscriber });
      }
      for (const b of backends) if (!present.has(b.id)) b.cacheEvents = undefined;
      for (const [id, r] of running) if (!present.has(id)) void close(id, r);
    },
    async stop() {
      await Promise.all([...running].map(([id, r]) => close(id, r)));
    },
  };
}
