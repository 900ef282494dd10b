import { GetError, httpGet } from './http-get.js';
import { parseVllmMetrics, type VllmLoad } from './vllm-metrics.js';

/**
 * The HTTP side of watching a backend: its /health, its /metrics read into load figures, its
 * /v1/models. Every failure rejects with a GetError whose message is fit for an operator.
 */
export interface Probe {
  health(url: string, timeoutMs: number): Promise<void>;
  metrics(url: string, timeoutMs: number): Promise<VllmLoad>;
  models(url: string, timeoutMs: number): Promise<string[]>;
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
    let body: { data?: Array<{ id?: unknown }> } | null;
    try {
      body = JSON.parse(await get(url, '/v1/models', timeoutMs)) as typeof body;
    } catch (err) {
      throw err instanceof GetError ? err : new GetError(`/v1/models: ${(err as Error).message}`);
    }
    const ids = (body?.data ?? []).map((m) => m?.id).filter((id): id is string => typeof id === 'string' && id !== '');
    if (ids.length === 0) throw new GetError('/v1/models listed no models');
    return ids.sort();
  },
};
