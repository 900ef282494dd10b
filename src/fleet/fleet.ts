import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { BackendConfig, DnsGroupConfig, KubernetesGroupConfig, RouterConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Backend, BackendView } from './backend.js';
import type { PodEndpoint, watchPods } from './kubernetes-discovery.js';
import { httpProbe, type Probe } from './probe.js';

export interface FleetOptions {
  config: RouterConfig;
  logger: Logger;
  /** Resolves a backend's host name to one IP address (injectable for tests). */
  resolveHost?: (host: string) => Promise<string>;
  /** Resolves a discovery name to all its addresses (injectable for tests). */
  resolveAll?: (host: string) => Promise<string[]>;
  /** How backends are probed over HTTP (injectable for tests). */
  probe?: Probe;
}

const kubernetesKey = (g: KubernetesGroupConfig) => `${g.apiServer ?? ''}|${g.namespace}|${g.labelSelector}|${g.port}`;

/**
 * The backends and their live state. Scraping and discovery run here, beside the request
 * path; the scheduler reads the backend objects as they are.
 */
export interface Fleet {
  /** Reconciles with a new config: unchanged backends keep their live state. */
  apply(config: RouterConfig): void;
  backends(): readonly Backend[];
  /** Backends that serve `model`, whatever their health. */
  servingModel(model: string): readonly Backend[];
  /** Models served by at least one routable backend, sorted. */
  routableModels(): string[];
  /** Models any backend serves, routable or not. */
  isKnownModel(model: string): boolean;
  dispatch(backend: Backend): void;
  release(backend: Backend): void;
  /** Called (coalesced) when backends, their endpoints, models or health change. */
  onChange(listener: () => void): () => void;
  start(): void;
  stop(): void;
}

/** An IP as it stands in a URL or an `ip:port` endpoint (IPv6 in brackets). */
function hostLiteral(ip: string): string {
  return isIP(ip) === 6 ? `[${ip}]` : ip;
}

/** In rotation: not known to be down, with an endpoint Envoy knows and at least one model. */
export function isRoutable(backend: BackendView): boolean {
  return backend.health !== 'unhealthy' && backend.endpoint !== '' && backend.models.length > 0;
}

const HALF_LIFE_MS = 30_000;

/** Decays the operator-facing rates and folds in what happened since the last scrape. */
function updateRecent(backend: Backend, hits: number | undefined, queries: number | undefined): void {
  const r = backend.recent;
  const now = Date.now();
  const dt = Math.max(1, now - r.lastAt);
  const decay = 0.5 ** (dt / HALF_LIFE_MS);
  if (hits !== undefined && queries !== undefined && r.lastHits !== undefined && r.lastQueries !== undefined && queries >= r.lastQueries) {
    r.hits = r.hits * decay + Math.max(0, hits - r.lastHits);
    r.queries = r.queries * decay + (queries - r.lastQueries);
    r.prefixHitShare = r.queries > 0 ? r.hits / r.queries : r.prefixHitShare;
  }
  r.lastHits = hits;
  r.lastQueries = queries;
  const instant = ((backend.routed - r.lastRouted) * 1000) / dt;
  r.routedPerSecond = r.routedPerSecond * decay + instant * (1 - decay);
  r.lastRouted = backend.routed;
  r.lastAt = now;
}

export function backendId(config: BackendConfig): string {
  return config.name ?? new URL(config.url).host;
}

export function createFleet(options: FleetOptions): Fleet {
  const { logger } = options;
  const resolveHost = options.resolveHost ?? (async (host: string) => (await lookup(host)).address);
  const probe = options.probe ?? httpProbe;
  const resolveAll = options.resolveAll ?? (async (host: string) => (await lookup(host, { all: true })).map((a) => a.address));
  /** Addresses each DNS group resolved to last time it resolved at all. */
  const dnsMembers = new Map<string, string[]>();
  const dnsTimers = new Map<string, NodeJS.Timeout>();
  const dnsErrors = new Map<string, string>();
  /** Ready pods of each Kubernetes group, and the watches that follow them. */
  const podMembers = new Map<string, PodEndpoint[]>();
  const podWatches = new Map<string, { stop(): void }>();
  let config = options.config;
  let running = false;
  const backends = new Map<string, Backend>();
  const timers = new Map<string, NodeJS.Timeout>();
  const listeners = new Set<() => void>();
  let byModel = new Map<string, Backend[]>();
  let changePending = false;

  const reindex = () => {
    const index = new Map<string, Backend[]>();
    for (const backend of backends.values()) {
      for (const model of backend.models) {
        let list = index.get(model);
        if (!list) index.set(model, (list = []));
        list.push(backend);
      }
    }
    byModel = index;
  };

  const changed = () => {
    reindex();
    if (changePending) return;
    changePending = true;
    queueMicrotask(() => {
      changePending = false;
      for (const listener of listeners) listener();
    });
  };

  const newBackend = (bc: BackendConfig): Backend => ({
    id: backendId(bc),
    url: bc.url.replace(/\/$/, ''),
    endpoint: '',
    models: bc.models ? [...bc.models] : [],
    modelsFromConfig: bc.models !== undefined,
    health: 'unknown',
    capacity: bc.capacity,
    metrics: undefined,
    inflight: 0,
    unseenDispatches: 0,
    queueing: false,
    lastScrapeAt: undefined,
    lastScrapeOkAt: undefined,
    lastError: undefined,
    metricsError: undefined,
    consecutiveFailures: 0,
    dispatched: 0,
    routed: 0,
    recent: { prefixHitShare: undefined, routedPerSecond: 0, hits: 0, queries: 0, lastHits: undefined, lastQueries: undefined, lastRouted: 0, lastAt: Date.now() },
  });

  async function resolveEndpoint(backend: Backend): Promise<void> {
    const url = new URL(backend.url);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const ip = isIP(host) ? host : await resolveHost(host);
    const endpoint = `${hostLiteral(ip)}:${port}`;
    if (endpoint !== backend.endpoint) {
      backend.endpoint = endpoint;
      changed();
    }
  }

  async function refreshModels(backend: Backend): Promise<void> {
    const ids = await probe.models(backend.url, config.scraping.timeoutMs);
    if (ids.join('\n') !== backend.models.join('\n')) {
      logger.info('backend models', { backend: backend.id, models: ids });
      backend.models = ids;
      changed();
    }
  }

  let modelsCheckedAt = new WeakMap<Backend, number>();

  /** GET /metrics. A failure here only makes the figures stale; it says nothing of health. */
  async function readMetrics(backend: Backend, dispatchedAtStart: number): Promise<void> {
    try {
      const metrics = await probe.metrics(backend.url, config.scraping.timeoutMs);
      backend.queueing = metrics.waiting > 0 && (backend.metrics?.waiting ?? 0) > 0;
      backend.metrics = metrics;
      updateRecent(backend, metrics.prefixCacheHits, metrics.prefixCacheQueries);
      backend.unseenDispatches = backend.dispatched - dispatchedAtStart;
      backend.lastScrapeOkAt = Date.now();
      backend.metricsError = undefined;
    } catch (err) {
      if (!running) return;
      const message = describe(err);
      if (backend.metricsError !== message) logger.warn('backend metrics unusable; scoring it by in-flight counts', { backend: backend.id, error: message });
      backend.metricsError = message;
      if (backend.lastScrapeOkAt === undefined || Date.now() - backend.lastScrapeOkAt > config.scraping.staleAfterMs) {
        backend.metrics = undefined;
        backend.queueing = false;
      }
    }
  }

  async function scrape(backend: Backend): Promise<void> {
    const { unhealthyAfterFailures, modelsRefreshMs } = config.scraping;
    const startedAt = Date.now();
    const dispatchedAtStart = backend.dispatched;
    backend.lastScrapeAt = startedAt;
    try {
      if (backend.endpoint === '') await resolveEndpoint(backend);
      if (!backend.modelsFromConfig && startedAt - (modelsCheckedAt.get(backend) ?? 0) >= modelsRefreshMs) {
        modelsCheckedAt.set(backend, startedAt);
        await refreshModels(backend);
      }
      const [health] = await Promise.allSettled([probe.health(backend.url, config.scraping.timeoutMs), readMetrics(backend, dispatchedAtStart)]);
      if (!running || !backends.has(backend.id)) return;
      if (health.status === 'rejected') throw health.reason;
      backend.lastError = undefined;
      backend.consecutiveFailures = 0;
      if (backend.health !== 'healthy') {
        logger.info('backend healthy', { backend: backend.id, endpoint: backend.endpoint });
        backend.health = 'healthy';
        changed();
      }
    } catch (err) {
      // A probe that ends after stop() is of no use to anyone.
      if (!running) return;
      const message = describe(err);
      backend.lastError = message;
      backend.consecutiveFailures++;
      if (backend.consecutiveFailures >= unhealthyAfterFailures && backend.health !== 'unhealthy') {
        logger.warn('backend unhealthy', { backend: backend.id, url: backend.url, error: message });
        backend.health = 'unhealthy';
        changed();
      } else if (backend.consecutiveFailures === 1) {
        logger.debug('health check failed', { backend: backend.id, error: message });
      }
      if (!backend.modelsFromConfig) modelsCheckedAt.delete(backend);
    }
  }

  function schedule(backend: Backend, delayMs: number): void {
    if (!running) return;
    timers.set(
      backend.id,
      setTimeout(async () => {
        const started = Date.now();
        await scrape(backend);
        if (backends.get(backend.id) === backend) {
          schedule(backend, Math.max(0, config.scraping.intervalMs - (Date.now() - started)));
        }
      }, delayMs),
    );
  }

  const dnsKey = (g: DnsGroupConfig) => `${g.name}:${g.port}`;

  /** The config's backends plus one per address of each DNS group and per ready pod. */
  function desiredBackends(next: RouterConfig): BackendConfig[] {
    const out: BackendConfig[] = [...next.backends];
    for (const g of next.discovery.kubernetes) {
      for (const pod of podMembers.get(kubernetesKey(g)) ?? []) {
        const host = hostLiteral(pod.ip);
        const models = pod.model ? [pod.model] : g.models;
        out.push({ name: `${g.namespace}/${pod.pod}`, url: `${g.scheme}://${host}:${g.port}`, ...(models ? { models } : {}), capacity: g.capacity });
      }
    }
    for (const g of next.discovery.dns) {
      for (const ip of dnsMembers.get(dnsKey(g)) ?? []) {
        const host = hostLiteral(ip);
        out.push({
          name: `${g.name}/${host}:${g.port}`,
          url: `${g.scheme}://${host}:${g.port}`,
          ...(g.models ? { models: g.models } : {}),
          capacity: g.capacity,
        });
      }
    }
    return out;
  }

  async function refreshDns(g: DnsGroupConfig): Promise<void> {
    const key = dnsKey(g);
    try {
      const ips = [...new Set(await resolveAll(g.name))].sort();
      if (ips.length === 0) throw new Error('no addresses');
      dnsErrors.delete(key);
      if (ips.join(',') !== (dnsMembers.get(key) ?? []).join(',')) {
        logger.info('dns discovery', { name: g.name, addresses: ips });
        dnsMembers.set(key, ips);
        if (running) reconcile(config);
      }
    } catch (err) {
      // A failed lookup says nothing about the servers: keep the ones we have.
      const message = describe(err);
      if (dnsErrors.get(key) !== message) {
        logger.warn('dns discovery failed; keeping the last known backends', { name: g.name, error: message, kept: dnsMembers.get(key)?.length ?? 0 });
        dnsErrors.set(key, message);
      }
    }
  }

  function scheduleDns(next: RouterConfig): void {
    const keep = new Set(next.discovery.dns.map(dnsKey));
    for (const [key, timer] of dnsTimers) {
      if (!keep.has(key)) {
        clearTimeout(timer);
        dnsTimers.delete(key);
        dnsMembers.delete(key);
      }
    }
    for (const g of next.discovery.dns) {
      const key = dnsKey(g);
      clearTimeout(dnsTimers.get(key));
      const loop = async () => {
        await refreshDns(g);
        if (running && dnsTimers.has(key)) dnsTimers.set(key, setTimeout(loop, g.refreshMs));
      };
      dnsTimers.set(key, setTimeout(loop, 0));
    }
  }

  function watchKubernetes(next: RouterConfig): void {
    const keep = new Set(next.discovery.kubernetes.map(kubernetesKey));
    for (const [key, watch] of podWatches) {
      if (keep.has(key)) continue;
      watch.stop();
      podWatches.delete(key);
      podMembers.delete(key);
    }
    for (const g of next.discovery.kubernetes) {
      const key = kubernetesKey(g);
      if (podWatches.has(key)) continue;
      podWatches.set(
        key,
        watchPodsWhenLoaded(g, logger, (pods) => {
          logger.info('kubernetes discovery', { namespace: g.namespace, selector: g.labelSelector, pods: pods.map((p) => p.pod) });
          podMembers.set(key, pods);
          if (running) reconcile(config);
        }),
      );
    }
  }

  function apply(next: RouterConfig): void {
    config = next;
    if (running) {
      scheduleDns(next);
      watchKubernetes(next);
    }
    reconcile(next);
  }

  function reconcile(next: RouterConfig): void {
    const wanted = new Map(desiredBackends(next).map((bc) => [backendId(bc), bc]));
    for (const [id, backend] of backends) {
      const bc = wanted.get(id);
      if (!bc || bc.url.replace(/\/$/, '') !== backend.url) {
        backends.delete(id);
        clearTimeout(timers.get(id));
        timers.delete(id);
        logger.info('backend removed', { backend: id });
      }
    }
    for (const [id, bc] of wanted) {
      const existing = backends.get(id);
      if (existing) {
        existing.capacity = bc.capacity;
        const models = bc.models ? [...bc.models] : existing.modelsFromConfig ? [] : existing.models;
        existing.modelsFromConfig = bc.models !== undefined;
        if (existing.modelsFromConfig === false && models.length === 0) modelsCheckedAt.delete(existing);
        existing.models = models;
        continue;
      }
      const backend = newBackend(bc);
      backends.set(id, backend);
      logger.info('backend added', { backend: id, url: backend.url, models: backend.models });
      const ip = new URL(backend.url).hostname.replace(/^\[|\]$/g, '');
      if (isIP(ip)) void resolveEndpoint(backend);
      schedule(backend, 0);
    }
    changed();
  }

  return {
    apply,
    backends: () => [...backends.values()],
    servingModel: (model) => byModel.get(model) ?? [],
    routableModels: () => [...byModel.entries()].filter(([, list]) => list.some(isRoutable)).map(([m]) => m).sort(),
    isKnownModel: (model) => byModel.has(model),
    dispatch(backend) {
      backend.dispatched++;
      backend.routed++;
      backend.unseenDispatches++;
      backend.inflight++;
    },
    release(backend) {
      if (backend.inflight > 0) backend.inflight--;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    start() {
      if (running) return;
      running = true;
      modelsCheckedAt = new WeakMap();
      apply(config);
    },
    stop() {
      running = false;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      for (const timer of dnsTimers.values()) clearTimeout(timer);
      dnsTimers.clear();
      for (const watch of podWatches.values()) watch.stop();
      podWatches.clear();
    },
  };
}

function describe(err: unknown): string {
  return (err as Error).message ?? String(err);
}

/**
 * The Kubernetes client is loaded only when a config asks for pod discovery: it holds tens of
 * MiB of heap, which every full garbage collection of the router would otherwise walk.
 */
const watchPodsWhenLoaded: typeof watchPods = (group, logger, onChange) => {
  let watch: { stop(): void } | undefined;
  let stopped = false;
  import('./kubernetes-discovery.js').then(
    (k8s) => {
      if (!stopped) watch = k8s.watchPods(group, logger, onChange);
    },
    (err: Error) => logger.error('cannot load the Kubernetes client', { error: err }),
  );
  return {
    stop() {
      stopped = true;
      watch?.stop();
    },
  };
};
