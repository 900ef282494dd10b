import { lookup } from 'node:dns/promises';
import type { RouterConfig } from '../config/schema.js';
import type { Logger } from '../support/log.js';
import type { FleetView } from './backend.js';
import { createDnsDiscovery } from './discovery/dns.js';
import { createKubernetesDiscovery } from './discovery/kubernetes.js';
import type { DiscoverySource } from './discovery/source.js';
import { createKvEventSources } from './kv-event-sources.js';
import type { KvEventSink } from './kv-events/subscriber.js';
import { httpProbe, type Probe } from './probe.js';
import { createRegistry } from './registry.js';
import { createScraper } from './scraper.js';

export interface FleetOptions {
  config: RouterConfig;
  logger: Logger;
  /** Resolves a backend's host name to one IP address (injectable for tests). */
  resolveHost?: (host: string) => Promise<string>;
  /** Resolves a discovery name to all its addresses (injectable for tests). */
  resolveAll?: (host: string) => Promise<string[]>;
  /** How backends are probed over HTTP (injectable for tests). */
  probe?: Probe;
  /**
   * Where the events of each backend's publisher (one per data-parallel rank) go: the precise
   * prefix index. Without it they are not followed.
   */
  kvEventSink?: (backendId: string, rank: number) => KvEventSink;
}

/**
 * The backends and their live state: the registry (state), the discovery sources (which
 * backends exist) and the scraper (what state they are in), wired together.
 */
export interface Fleet extends FleetView {
  /** Reconciles with a new config: unchanged backends keep their live state. */
  apply(config: RouterConfig): void;
  /** Called (coalesced) when backends, their endpoints, models or health change. */
  onChange(listener: () => void): () => void;
  start(): void;
  stop(): void;
}

export function createFleet(options: FleetOptions): Fleet {
  const { logger } = options;
  let config = options.config;
  let running = false;
  const registry = createRegistry(logger);
  const scraper = createScraper({
    registry,
    probe: options.probe ?? httpProbe,
    resolveHost: options.resolveHost ?? (async (host) => (await lookup(host)).address),
    settings: () => config.scraping,
    logger,
  });

  const kvEvents = options.kvEventSink ? createKvEventSources({ sinkFor: options.kvEventSink, logger }) : undefined;

  /** The config's own backends first, then each source's members. */
  const reconcile = () => {
    const wanted = [...config.backends, ...sources.flatMap((s) => s.backends(config))];
    const { added, removed } = registry.reconcile(wanted);
    for (const backend of removed) scraper.unwatch(backend);
    for (const backend of added) scraper.watch(backend);
    kvEvents?.sync(registry.backends());
  };
  const membersChanged = () => {
    if (running) reconcile();
  };
  const sources: DiscoverySource[] = [
    createKubernetesDiscovery({ logger, onChange: membersChanged }),
    createDnsDiscovery({
      resolveAll: options.resolveAll ?? (async (host) => (await lookup(host, { all: true })).map((a) => a.address)),
      logger,
      onChange: membersChanged,
    }),
  ];

  function apply(next: RouterConfig): void {
    config = next;
    if (running) for (const source of sources) source.follow(next);
    reconcile();
  }

  return {
    apply,
    onChange: registry.onChange,
    backends: registry.backends,
    servingModel: registry.servingModel,
    routableModels: registry.routableModels,
    dispatch: registry.dispatch,
    release: registry.release,
    start() {
      if (running) return;
      running = true;
      scraper.start();
      apply(config);
    },
    stop() {
      running = false;
      scraper.stop();
      for (const source of sources) source.stop();
      void kvEvents?.stop();
    },
  };
}
