import { GetError, httpGet } from './http-get.js';
import type { ModelCard } from '../contract/local-answers.js';
import { parseVllmMetrics, type VllmLoad } from './vllm-metrics.js';

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

/** Probes over node:http on kept-alive connections (see http-get.ts). */
export const httpProbe: Probe = {
  async health(url, timeoutMs) {
    await get(url, '/health', timeoutMs);
  },

  async metrics(url, timeoutMs) {
    try {
      return parseVllmMetrics(await get(url, '/metrics', timeoutMs));
    } catch (err) {
      if (err instanceof GetError) throw err.timedOut ? new GetError(`/metrics ${err.message}`, true) : err;
      throw new GetError((err as Error).message);
    }
  },

  async models(url, timeoutMs) {
    let body: { data?: unknown[] } | null;
    try {
      body = JSON.parse(await get(url, '/v1/models', timeoutMs)) as typeof body;
    } catch (err) {
      throw err instanceof GetError ? err : new GetError(`/v1/models: ${(err as Error).message}`);
    }
    const cards = (Array.isArray(body?.data) ? body.data : []).map(readCard).filter((c): c is ModelCard => c !== undefined);
    if (cards.length === 0) throw new GetError('/v1/models listed no models');
    return cards.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  },
};

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
