import type { BackendConfig } from '../config/schema.js';
import type { Logger } from '../support/log.js';
import { backendId, capacityOf, DEFAULT_CAPACITY, isRoutable, notePrediction, type Backend, type FleetView } from './backend.js';
import { emptyRecentRates } from './recent-rates.js';
import { emptyServiceRates } from './service-rates.js';

/**
 * The datastore of the fleet: the backends and their live state, indexed by model. No I/O and
 * no timers: discovery decides which backends exist, the scraper fills in their state, the
 * request path counts what it sends; each tells the registry, which tells its listeners.
 */
export interface Registry extends FleetView {
  has(backend: Backend): boolean;
  /**
   * Makes the set of backends the one `wanted` describes. A backend whose id and URL are
   * unchanged keeps its live state; one whose URL changed is replaced.
   */
  reconcile(wanted: readonly BackendConfig[]): { added: Backend[]; removed: Backend[] };
  /** A backend's endpoint, models or health changed: reindex, and notify listeners (coalesced). */
  changed(): void;
  onChange(listener: () => void): () => void;
}

const origin = (url: string) => url.replace(/\/$/, '');

function newBackend(bc: BackendConfig): Backend {
  return {
    id: backendId(bc),
    url: origin(bc.url),
    endpoint: '',
    models: bc.models ? [...bc.models] : [],
    cards: [],
    modelsFromConfig: bc.models !== undefined,
    health: 'unknown',
    capacity: bc.capacity ?? DEFAULT_CAPACITY,
    capacityOverride: bc.capacity,
    kvEventsConfig: bc.kvEvents,
    cacheEvents: undefined,
    cacheEventsStale: false,
    rates: emptyServiceRates(),
    predictedTtft: [],
    metrics: undefined,
    inflight: 0,
    unseenDispatches: 0,
    unseenFinishes: 0,
    lastingExcess: 0,
    lastExcess: 0,
    queueing: false,
    suspect: false,
    lastScrapeAt: undefined,
    lastScrapeOkAt: undefined,
    lastError: undefined,
    metricsError: undefined,
    consecutiveFailures: 0,
    stoppedAnswering: false,
    dispatched: 0,
    finished: 0,
    endedPromptBytes: 0,
    endedPromptBytesAtRead: 0,
    routed: 0,
    recent: emptyRecentRates(),
  };
}

export function createRegistry(logger: Logger): Registry {
  const backends = new Map<string, Backend>();
  let byModel = new Map<string, Backend[]>();
  const listeners = new Set<() => void>();
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

  return {
    has: (backend) => backends.get(backend.id) === backend,
    reconcile(wanted) {
      const byId = new Map(wanted.map((bc) => [backendId(bc), bc]));
      const removed: Backend[] = [];
      for (const [id, backend] of backends) {
        const bc = byId.get(id);
        if (!bc || origin(bc.url) !== backend.url) {
          backends.delete(id);
          removed.push(backend);
          logger.info('backend removed', { backend: id });
        }
      }
      const added: Backend[] = [];
      for (const [id, bc] of byId) {
        const existing = backends.get(id);
        if (existing) {
          existing.capacityOverride = bc.capacity;
          existing.kvEventsConfig = bc.kvEvents;
          existing.capacity = capacityOf(existing);
          // Models named in the config win; dropped from it, they are read from the server again.
          existing.models = bc.models ? [...bc.models] : existing.modelsFromConfig ? [] : existing.models;
          existing.modelsFromConfig = bc.models !== undefined;
          continue;
        }
        const backend = newBackend(bc);
        backends.set(id, backend);
        added.push(backend);
        logger.info('backend added', { backend: id, url: backend.url, models: backend.models });
      }
      changed();
      return { added, removed };
    },
    changed,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    backends: () => [...backends.values()],
    servingModel: (model) => byModel.get(model) ?? [],
    routableModels: () => [...byModel.entries()].filter(([, list]) => list.some(isRoutable)).map(([m]) => m).sort(),
    dispatch(backend, predictedTtftS, prefillTokens) {
      if (predictedTtftS !== undefined && Number.isFinite(predictedTtftS)) notePrediction(backend, predictedTtftS, Date.now(), prefillTokens);
      backend.dispatched++;
      backend.routed++;
      backend.unseenDispatches++;
      backend.inflight++;
    },
    release(backend, promptBytes = 0) {
      if (backend.inflight === 0) return;
      backend.inflight--;
      backend.finished++;
      backend.endedPromptBytes += promptBytes;
      backend.unseenFinishes++;
    },
  };
}
