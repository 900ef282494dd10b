import { isIP } from 'node:net';
import type { RouterConfig } from '../config/schema.js';
import type { Logger } from '../support/log.js';
import type { ModelCard } from '../contract/local-answers.js';
import { activeUnseen, capacityOf, hostLiteral, takeDuePredictions, takeReportedPredictions, type Backend } from './backend.js';
import { GetError } from './http-get.js';
import type { Probe } from './probe.js';
import { updateRecentRates } from './recent-rates.js';
import type { Registry } from './registry.js';
import { createServiceRateLearner } from './service-rates.js';

export interface ScraperOptions {
  registry: Registry;
  probe: Probe;
  /** Resolves a backend's host name to one IP address. */
  resolveHost: (host: string) => Promise<string>;
  /** Read on every scrape: a reload may change them. */
  settings: () => RouterConfig['scraping'];
  logger: Logger;
}

/**
 * Keeps each backend's state fresh, beside the request path (the metrics refresher, kept apart
 * from the registry it writes to): every interval, GET /health (consecutive failures take the
 * backend out of rotation) and /metrics (load figures; a failure only makes them stale), now
 * and then /v1/models for backends whose models the config does not name, and the endpoint's
 * IP for backends named by host.
 */
export interface Scraper {
  /** Starts probing a backend new to the registry. */
  watch(backend: Backend): void;
  /** Stops probing a backend that left the registry. */
  unwatch(backend: Backend): void;
  start(): void;
  stop(): void;
}

const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, '');

function describe(err: unknown): string {
  return (err as Error).message ?? String(err);
}

export function createScraper(options: ScraperOptions): Scraper {
  const { registry, probe, resolveHost, logger, settings } = options;
  const timers = new Map<string, NodeJS.Timeout>();
  let modelsCheckedAt = new WeakMap<Backend, number>();
  let running = false;
  const learner = createServiceRateLearner();
  /** The slowest /health answer of each backend lately, decayed (half-life 30 s). */
  const slowestAnswer = new WeakMap<Backend, { ms: number; at: number }>();
  const slowestLately = (backend: Backend, now: number) => {
    const slowest = slowestAnswer.get(backend);
    return slowest ? slowest.ms * 0.5 ** ((now - slowest.at) / 30_000) : 0;
  };

  /**
   * How long a /health probe may go unanswered before the backend is suspect: suspectAfterMs,
   * or twice the slowest answer the backend gave lately if that is longer (a busy server on a
   * CPU answers in hundreds of milliseconds, and is slow, not hung), never past the timeout.
   */
  function patience(backend: Backend): number {
    const { suspectAfterMs, timeoutMs } = settings();
    return Math.min(timeoutMs, Math.max(suspectAfterMs, 2 * slowestLately(backend, Date.now())));
  }

  function answeredIn(backend: Backend, ms: number): void {
    const now = Date.now();
    slowestAnswer.set(backend, { ms: Math.max(ms, slowestLately(backend, now)), at: now });
  }

  async function resolveEndpoint(backend: Backend): Promise<void> {
    const url = new URL(backend.url);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    const host = hostOf(url);
    const ip = isIP(host) ? host : await resolveHost(host);
    const endpoint = `${hostLiteral(ip)}:${port}`;
    if (endpoint !== backend.endpoint) {
      backend.endpoint = endpoint;
      registry.changed();
    }
  }

  async function refreshModels(backend: Backend): Promise<void> {
    const cards = await probe.models(backend.url, settings().timeoutMs);
    // vLLM makes a fresh permission id and time on every call: compare without them, so a
    // refresh that changes nothing else does not republish Envoy's routes.
    const stable = (list: readonly ModelCard[]) => JSON.stringify(list.map(({ permission: _, ...rest }) => rest));
    if (stable(cards) === stable(backend.cards)) return;
    if (backend.modelsFromConfig) {
      // The config says what it serves; its cards say the rest (max_model_len, an adapter's parent).
      backend.cards = cards;
      registry.changed();
      return;
    }
    const ids = cards.map((c) => c.id);
    if (ids.join('\n') !== backend.models.join('\n')) logger.info('backend models', { backend: backend.id, models: ids });
    backend.models = ids;
    backend.cards = cards;
    registry.changed();
  }

  /** GET /metrics. A failure here only makes the figures stale; it says nothing of health. */
  async function readMetrics(backend: Backend, atStart: { dispatched: number; finished: number; endedPromptBytes: number }, startedAt: number): Promise<void> {
    try {
      const metrics = await probe.metrics(backend.url, settings().timeoutMs);
      backend.queueing = metrics.waiting > 0 && (backend.metrics?.waiting ?? 0) > 0;
      const before = backend.metrics?.histograms.ttft;
      backend.metrics = metrics;
      updateRecentRates(backend, metrics);
      // First tokens it reported since the last read, ours among them in our share of its work.
      const reported = metrics.histograms.ttft && before ? metrics.histograms.ttft.count - before.count : undefined;
      const oursReported = reported === undefined || reported < 0 ? undefined : Math.round(reported * (1 - (backend.recent.othersShare ?? 0)));
      learner.observe(backend.rates, metrics, oursReported === undefined ? takeDuePredictions(backend, startedAt) : takeReportedPredictions(backend, oursReported, startedAt));
      backend.capacity = capacityOf(backend);
      backend.unseenDispatches = backend.dispatched - atStart.dispatched;
      backend.unseenFinishes = backend.finished - atStart.finished;
      backend.endedPromptBytesAtRead = atStart.endedPromptBytes;
      // Ours when it was read: in flight then (sent before the read began, whether or not they
      // have finished since).
      const ours = backend.inflight - activeUnseen(backend) + backend.unseenFinishes;
      const excess = Math.max(0, metrics.running + metrics.waiting - ours);
      backend.lastingExcess = Math.min(excess, backend.lastExcess);
      backend.lastExcess = excess;
      backend.lastScrapeOkAt = Date.now();
      backend.metricsError = undefined;
    } catch (err) {
      if (!running) return;
      const message = describe(err);
      if (backend.metricsError !== message) logger.warn('backend metrics unusable; scoring it by in-flight counts', { backend: backend.id, error: message });
      backend.metricsError = message;
      if (backend.lastScrapeOkAt === undefined || Date.now() - backend.lastScrapeOkAt > settings().staleAfterMs) {
        backend.metrics = undefined;
        backend.queueing = false;
      }
    }
  }

  /**
   * Models are re-read every modelsRefreshMs, and at once while none are known. A backend whose
   * models the config names has its cards read as often, for what they add.
   */
  const modelsDue = (backend: Backend, now: number) =>
    (!backend.modelsFromConfig && backend.models.length === 0) || now - (modelsCheckedAt.get(backend) ?? 0) >= settings().modelsRefreshMs;

  async function scrape(backend: Backend): Promise<void> {
    const { unhealthyAfterFailures, timeoutMs } = settings();
    const startedAt = Date.now();
    const atStart = { dispatched: backend.dispatched, finished: backend.finished, endedPromptBytes: backend.endedPromptBytes };
    backend.lastScrapeAt = startedAt;
    try {
      if (backend.endpoint === '') await resolveEndpoint(backend);
      if (modelsDue(backend, startedAt)) {
        modelsCheckedAt.set(backend, startedAt);
        // Cards of a backend whose models are configured are a bonus: their absence is no failure.
        await refreshModels(backend).catch((err: unknown) => {
          if (!backend.modelsFromConfig) throw err;
        });
      }
      // A probe still unanswered past its patience marks the backend suspect at once,
      // seconds before enough failures take it out of rotation.
      const overdue = setTimeout(() => (backend.suspect = true), patience(backend));
      const probedAt = performance.now();
      const health = probe.health(backend.url, timeoutMs).then(() => answeredIn(backend, performance.now() - probedAt));
      const [healthResult] = await Promise.allSettled([health, readMetrics(backend, atStart, startedAt)]);
      clearTimeout(overdue);
      if (!running || !registry.has(backend)) return;
      if (healthResult.status === 'rejected') throw healthResult.reason;
      backend.suspect = false;
      backend.stoppedAnswering = false;
      backend.lastError = undefined;
      backend.consecutiveFailures = 0;
      if (backend.health !== 'healthy') {
        logger.info('backend healthy', { backend: backend.id, endpoint: backend.endpoint });
        backend.health = 'healthy';
        registry.changed();
      }
    } catch (err) {
      // A probe that ends after stop() is of no use to anyone.
      if (!running) return;
      const message = describe(err);
      backend.suspect = true;
      backend.stoppedAnswering = err instanceof GetError && err.timedOut;
      backend.lastError = message;
      backend.consecutiveFailures++;
      if (backend.consecutiveFailures >= unhealthyAfterFailures && backend.health !== 'unhealthy') {
        logger.warn('backend unhealthy', { backend: backend.id, url: backend.url, error: message });
        backend.health = 'unhealthy';
        registry.changed();
      } else if (backend.consecutiveFailures === 1) {
        logger.debug('health check failed', { backend: backend.id, error: message });
      }
      // Whatever failed, the models are read again on the next probe.
      modelsCheckedAt.delete(backend);
    }
  }

  function schedule(backend: Backend, delayMs: number): void {
    if (!running) return;
    timers.set(
      backend.id,
      setTimeout(async () => {
        const started = Date.now();
        await scrape(backend);
        if (registry.has(backend)) schedule(backend, Math.max(0, settings().intervalMs - (Date.now() - started)));
      }, delayMs),
    );
  }

  return {
    watch(backend) {
      // An IP-literal endpoint is known at once, before the first probe answers.
      if (isIP(hostOf(new URL(backend.url)))) void resolveEndpoint(backend);
      schedule(backend, 0);
    },
    unwatch(backend) {
      clearTimeout(timers.get(backend.id));
      timers.delete(backend.id);
    },
    start() {
      running = true;
      modelsCheckedAt = new WeakMap();
    },
    stop() {
      running = false;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    },
  };
}
