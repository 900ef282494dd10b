/**
 * The fleet's data model: what a backend is, what may be read about it, and the pure helpers
 * every reader shares. The scheduler, xDS, admin and ext_proc depend on this file, never on
 * how the fleet is kept up to date.
 */
import { isIP } from 'node:net';
import type { BackendConfig } from '../config/schema.js';
import type { ModelCard } from '../contract/local-answers.js';
import type { KvEventStatus } from './kv-events/subscriber.js';
import type { VllmLoad } from './vllm-metrics.js';

export type Health = 'unknown' | 'healthy' | 'unhealthy';

/**
 * What the scheduler may read about a backend. The fleet owns the live object; the scheduler
 * only reads it, so one pick costs no copying.
 */
export interface BackendView {
  readonly id: string;
  /** `ip:port` as Envoy's cluster knows the endpoint; what the picker names. */
  readonly endpoint: string;
  readonly models: readonly string[];
  readonly health: Health;
  /**
   * Requests it runs at once before others wait: the config's `capacity` if given, else what
   * it has shown (`rates.slots`), else DEFAULT_CAPACITY.
   */
  readonly capacity: number;
  /** How fast it serves, learned from its own metrics (fleet/service-rates.ts). */
  readonly rates: Readonly<ServiceRates>;
  /** Last good scrape, or undefined when never scraped or too old to trust. */
  readonly metrics: VllmLoad | undefined;
  /** Requests we routed there that have not finished from Envoy's point of view. */
  readonly inflight: number;
  /** Requests routed there since the last good scrape began: not yet visible in its metrics. */
  readonly unseenDispatches: number;
  /**
   * Requests of ours that finished since the last good scrape began: its figures still count
   * those that were there when it was read.
   */
  readonly unseenFinishes: number;
  /**
   * Requests in its figures beyond ours, in both of the last two scrapes: work from elsewhere
   * that is still there (a gauge that trails our own work shows an excess in one scrape only).
   */
  readonly lastingExcess: number;
  /** Prompt text bytes of the requests routed there (by us or a peer) that had ended when last read. */
  readonly endedPromptBytesAtRead: number;
  /**
   * Requests waited in two scrapes running: the server is saturated. One scrape's waiting
   * count alone is often a request that arrived just before the next scheduler step.
   */
  readonly queueing: boolean;
  /**
   * Its last /health probe failed, or the current one is overdue: it may have stopped
   * answering (a wedged GPU, a stopped process). New requests prefer other backends.
   */
  readonly suspect: boolean;
  /**
   * Share of prompt tokens its own prefix cache served lately, and share of the requests it
   * completed lately that did not come through this router (its vLLM counters against ours),
   * once known.
   */
  readonly recent: { readonly prefixHitShare: number | undefined; readonly othersShare: number | undefined };
  /** Its KV event stream, when the config names one: what the server itself says its cache holds. */
  readonly cacheEvents: Readonly<KvEventStatus> | undefined;
  /** Its stream is connected but silent while we keep sending it work: events may be lost. */
  readonly cacheEventsStale: boolean;
  /** Our requests' predicted first tokens there (when due, and the prompt tokens it had to prefill), until the scrape after. */
  readonly predictedTtft: readonly PendingPrediction[];
}

export interface PendingPrediction {
  /** When its first token was predicted, in Date.now() ms. */
  dueAt: number;
  seconds: number;
  /** Prompt tokens the backend was predicted to prefill for it (not in its cache). */
  prefillTokens: number;
}

/** Assumed until a backend shows how many requests it runs before queueing (vLLM's GPU default max_num_seqs). */
export const DEFAULT_CAPACITY = 256;

/** Predictions kept per backend while its metrics cannot be read, oldest dropped first. */
const MAX_PENDING_PREDICTIONS = 4096;

/** Records a prediction (registry) and takes those due by `at` (scraper): their sum and count. */
export function notePrediction(b: Pick<Backend, 'predictedTtft'>, seconds: number, now: number, prefillTokens = 0): void {
  if (b.predictedTtft.length >= MAX_PENDING_PREDICTIONS) b.predictedTtft.shift();
  b.predictedTtft.push({ dueAt: now + seconds * 1000, seconds, prefillTokens });
}

/**
 * Takes the predictions of the requests whose first token a scrape reported: the `count` oldest
 * sent before it began (vLLM serves first come, first served), so each is compared with its own
 * request's measurement, not with whatever happened to finish when it was due.
 */
export function takeReportedPredictions(b: Pick<Backend, 'predictedTtft'>, count: number, sentBefore: number): { sumS: number; count: number } {
  let sumS = 0;
  let taken = 0;
  while (taken < count && taken < b.predictedTtft.length) {
    const p = b.predictedTtft[taken]!;
    if (p.dueAt - p.seconds * 1000 >= sentBefore) break;
    sumS += p.seconds;
    taken++;
  }
  b.predictedTtft = b.predictedTtft.slice(taken);
  return { sumS, count: taken };
}

/** Takes the predictions due by `at`: for a server that does not report its first tokens. */
export function takeDuePredictions(b: Pick<Backend, 'predictedTtft'>, at: number): { sumS: number; count: number } {
  let sumS = 0;
  let count = 0;
  b.predictedTtft = b.predictedTtft.filter((p) => {
    if (p.dueAt > at) return true;
    sumS += p.seconds;
    count++;
    return false;
  });
  return { sumS, count };
}

/** The capacity a backend is scheduled with: the config's, else what it showed, else the default. */
export function capacityOf(b: Pick<Backend, 'capacityOverride' | 'rates'>): number {
  return b.capacityOverride ?? b.rates.slots ?? DEFAULT_CAPACITY;
}

/** What a backend's metrics have shown of its speed; each figure undefined until shown. */
export interface ServiceRates {
  /** One engine step with a batch of n sequences takes stepBaseS + n * stepPerSequenceS. */
  stepBaseS: number | undefined;
  stepPerSequenceS: number | undefined;
  /** Prefill time per prompt token not served from its cache, beyond the first step: what a token adds to a step. */
  prefillPerTokenS: number | undefined;
  /**
   * The same as a request lives it (its prefill time, per token, beyond a step): its own tokens
   * and the others' work in the steps it shares. Above the marginal rate where prefills overlap.
   */
  contendedPrefillPerTokenS: number | undefined;
  /** How long a request holds its slot (first scheduled to finished), on average. */
  slotHoldS: number | undefined;
  /** How long a request waits to be scheduled when no one waits for capacity (the step in progress). */
  admissionS: number | undefined;
  /** Time to first token beyond the engine's queue and prefill: the API server's own work (tokenizing, templating). */
  frontEndS: number | undefined;
  /** Tokens a request generates there, on average. */
  outputTokens: number | undefined;
  /** Requests it ran while others waited for capacity: its effective concurrency. */
  slots: number | undefined;
  /** Requests its figures come from, decayed like them: how far to trust them over its peers'. */
  measuredRequests: number;
  /** Mean time to first token the router predicted for what it sent there, and what vLLM measured. */
  ttftPredictedS: number | undefined;
  ttftMeasuredS: number | undefined;
  /** Mean absolute error of the prediction relative to the measurement, over windows of 40 measured requests. */
  ttftError: number | undefined;
}

/**
 * Requests we routed since the last scrape that are still in flight. Those already finished
 * are no load; counting them would make a server that answers quickly look busy.
 */
export function activeUnseen(b: Pick<BackendView, 'unseenDispatches' | 'inflight'>): number {
  return Math.min(b.unseenDispatches, b.inflight);
}

/** Live state of one backend, mutated only by the fleet. */
export interface Backend extends BackendView {
  id: string;
  url: string;
  endpoint: string;
  models: string[];
  /** What the server's /v1/models says of each model (none for models named in the config). */
  cards: ModelCard[];
  modelsFromConfig: boolean;
  health: Health;
  capacity: number;
  /**
   * Time to first token predicted for requests routed there whose first token is not yet due
   * (sent + predicted), so each is compared with the server's figures of the interval where it
   * should have landed.
   */
  predictedTtft: PendingPrediction[];
  /** The config's `capacity`, if it set one. */
  capacityOverride: number | undefined;
  /** Where the config says it publishes KV events, if anywhere. */
  kvEventsConfig: BackendConfig['kvEvents'];
  cacheEvents: Readonly<KvEventStatus> | undefined;
  cacheEventsStale: boolean;
  rates: ServiceRates;
  metrics: VllmLoad | undefined;
  inflight: number;
  unseenDispatches: number;
  unseenFinishes: number;
  lastingExcess: number;
  /** Internal: the excess over ours in the last scrape. */
  lastExcess: number;
  queueing: boolean;
  suspect: boolean;
  lastScrapeAt: number | undefined;
  lastScrapeOkAt: number | undefined;
  /** Why the last health probe failed, if it did. */
  lastError: string | undefined;
  /**
   * Its probes went unanswered (timed out) rather than refused or reset: the requests it
   * holds are stuck there. A server that refuses or resets fails its requests instead, and
   * Envoy retries them on another backend.
   */
  stoppedAnswering: boolean;
  /** Why /metrics could not be used, if it could not (the backend may still be healthy). */
  metricsError: string | undefined;
  consecutiveFailures: number;
  /** Total picks, monotonic; snapshotted at scrape start to compute unseenDispatches. */
  dispatched: number;
  /** Total releases, monotonic; snapshotted at scrape start to compute unseenFinishes. */
  finished: number;
  /** Prompt text bytes of the released requests, monotonic; snapshotted at scrape start. */
  endedPromptBytes: number;
  endedPromptBytesAtRead: number;
  routed: number;
  /** Recent rates for the operator's view, decayed with a 30 s half-life. */
  recent: RecentRates;
}

export interface RecentRates {
  /** Share of prompt tokens served from the backend's prefix cache. */
  prefixHitShare: number | undefined;
  /** Share of the requests it completed that other clients sent (other router replicas, direct callers). */
  othersShare: number | undefined;
  /** Requests routed there per second. */
  routedPerSecond: number;
  /** Internal: decayed sums and the last counters seen. */
  hits: number;
  queries: number;
  completed: number;
  completedByOthers: number;
  lastHits: number | undefined;
  lastQueries: number | undefined;
  lastCompleted: number | undefined;
  lastByOthers: number;
  lastFinished: number;
  lastRouted: number;
  lastAt: number;
}

/**
 * The fleet as the request path and the operator's views see it: the backends, indexed by
 * model, and the accounting of requests sent to them.
 */
export interface FleetView {
  backends(): readonly Backend[];
  /** Backends that serve `model`, whatever their health. */
  servingModel(model: string): readonly Backend[];
  /** Models served by at least one routable backend, sorted. */
  routableModels(): string[];
  /** Counts a request routed there, with its predicted time to first token and the prompt tokens it has to prefill. */
  dispatch(backend: Backend, predictedTtftS?: number, prefillTokens?: number): void;
  /** That request (`promptBytes` of prompt text, 0 where it was tokenized) no longer occupies `backend`. */
  release(backend: Backend, promptBytes?: number): void;
}

/** In rotation: not known to be down, with an endpoint Envoy knows and at least one model. */
export function isRoutable(backend: BackendView): boolean {
  return backend.health !== 'unhealthy' && backend.endpoint !== '' && backend.models.length > 0;
}

/** A backend's id: its configured name, else `host:port` of its URL. */
export function backendId(config: BackendConfig): string {
  return config.name ?? new URL(config.url).host;
}

/** An IP as it stands in a URL or an `ip:port` endpoint (IPv6 in brackets). */
export function hostLiteral(ip: string): string {
  return isIP(ip) === 6 ? `[${ip}]` : ip;
}

/**
 * One card per model the backends serve, in rotation or not, sorted by id: the fleet's
 * /v1/models, so a model whose servers are all down reads as unavailable (503), not gone.
 * Where servers
 * differ, `max_model_len` is the smallest (a request must fit whichever server it reaches), and
 * the other fields come from the first backend, by id, that reported the model.
 */
export function modelCards(backends: readonly Pick<Backend, 'id' | 'models' | 'cards'>[]): ModelCard[] {
  const cards = new Map<string, ModelCard>();
  for (const backend of [...backends].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    for (const id of backend.models) {
      const reported = backend.cards.find((c) => c.id === id);
      const card = cards.get(id);
      if (!card) {
        cards.set(id, reported ? { ...reported } : { id, owned_by: 'vllm', root: id, parent: null });
      } else if (typeof reported?.max_model_len === 'number') {
        card.max_model_len = Math.min(card.max_model_len ?? Infinity, reported.max_model_len);
      }
    }
  }
  return [...cards.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
