import { GetError, httpGet } from './http-get.js';
import type { ModelCard } from '../contract/local-answers.js';
import { MetricsFormatError, parseVllmMetrics, READ_SERIES, type VllmLoad } from './vllm-metrics.js';

/**
 * The HTTP side of watching a backend: its /health, its /metrics read into load figures, its
 * /v1/models. Every failure rejects with a GetError whose message is fit for an operator.
 */
export interface Probe {
  health(url: string, timeoutMs: number): Promise<void>;
  metrics(url: string, timeoutMs: number): Promise<VllmLoad>;
  /** The models it serves, sorted by id. */
  models(url: string, timeoutMs: number): Promise<ModelCard[]>;
}

async function get(url: string, path: string, timeoutMs: number): Promise<string> {
  const res = await httpGet(`${url}${path}`, timeoutMs);
  if (res.status !== 200) throw new GetError(`${path} answered ${res.status}`);
  return res.body;
}

/**
 * The series the router reads, asked for by name as prometheus_client serves them
 * (`?name[]=...`). vLLM answers that on `/metrics/` (its `/metrics` route ignores the query):
 * 7 KB instead of 48 KB, 1.6-2.0 ms of its API server's CPU instead of 5.6-6.1 (bench/vllm-scrape-cost.ts).
 */
const FILTERED_METRICS = `/metrics/?${READ_SERIES.map((name) => `name%5B%5D=${encodeURIComponent(name)}`).join('&')}`;
const MAX_REMEMBERED = 4_096;

/** Probes over node:http on kept-alive connections (see http-get.ts), each with its own memory of who serves /metrics/. */
export function createHttpProbe(): Probe {
  /** Backends whose `/metrics/` gave no page where `/metrics` did; bounded against discovery churn. */
  const unfilteredBackends = new Set<string>();

  async function readMetrics(url: string, timeoutMs: number): Promise<VllmLoad> {
    if (!unfilteredBackends.has(url)) {
      // A timeout or a refused connection rejects here: the plain path would fare no better.
      const filtered = await httpGet(`${url}${FILTERED_METRICS}`, timeoutMs);
      if (filtered.status === 200) {
        try {
          return parseVllmMetrics(filtered.body);
        } catch (err) {
          if (!(err instanceof MetricsFormatError)) throw err;
        }
      }
    }
    try {
      const load = parseVllmMetrics(await get(url, '/metrics', timeoutMs));
      if (!unfilteredBackends.has(url)) {
        if (unfilteredBackends.size >= MAX_REMEMBERED) unfilteredBackends.clear();
        unfilteredBackends.add(url);
      }
      return load;
    } catch (err) {
      unfilteredBackends.delete(url); // it may have been replaced: ask by name again next time
      throw err;
    }
  }

  return {
    async health(url, timeoutMs) {
      await get(url, '/health', timeoutMs);
    },

    async metrics(url, timeoutMs) {
      try {
        return await readMetrics(url, timeoutMs);
      } catch (err) {
        if (err instanceof GetError) throw err.timedOut ? new GetError(`/metrics ${err.message}`, true) : err;
        throw new GetError((err as Error).message);
      }
    },

    models: readModels,
  };
}

export const httpProbe: Probe = createHttpProbe();

async function readModels(url: string, timeoutMs: number): Promise<ModelCard[]> {
  let body: { data?: unknown[] } | null;
  try {
    body = JSON.parse(await get(url, '/v1/models', timeoutMs)) as typeof body;
  } catch (err) {
    throw err instanceof GetError ? err : new GetError(`/v1/models: ${(err as Error).message}`);
  }
  const cards = (Array.isArray(body?.data) ? body.data : []).map(readCard).filter((c): c is ModelCard => c !== undefined);
  if (cards.length === 0) throw new GetError('/v1/models listed no models');
  return cards.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** One entry of /v1/models, keeping the fields vLLM clients read; undefined without an id. */
function readCard(entry: unknown): ModelCard | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const e = entry as Record<string, unknown>;
  if (typeof e.id !== 'string' || e.id === '') return undefined;
  const card: ModelCard = {
    id: e.id,
    owned_by: typeof e.owned_by === 'string' ? e.owned_by : 'vllm',
    root: typeof e.root === 'string' && e.root !== '' ? e.root : e.id,
    parent: typeof e.parent === 'string' && e.parent !== '' ? e.parent : null,
  };
  if (typeof e.max_model_len === 'number' && Number.isSafeInteger(e.max_model_len) && e.max_model_len > 0) card.max_model_len = e.max_model_len;
  else if (e.max_model_len === null) card.max_model_len = null; // vLLM's adapter cards
  if (Array.isArray(e.permission)) card.permission = e.permission;
  return card;
}
