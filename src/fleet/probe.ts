import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
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
  close(): Promise<void>;
}

type Kind = 'health' | 'metrics' | 'models';

async function get(url: string, path: string, timeoutMs: number): Promise<string> {
  const res = await httpGet(`${url}${path}`, timeoutMs);
  if (res.status !== 200) throw new GetError(`${path} answered ${res.status}`);
  return res.body;
}

const probes: Record<Kind, (url: string, timeoutMs: number) => Promise<unknown>> = {
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
    let body: { data?: Array<{ id?: unknown }> };
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

/** A worker entry that loads a TypeScript module through tsx (a development dependency). */
function tsxEntry(module: URL): string {
  // The ESM build of tsx/esm/api, as its package exports name it (require.resolve gives the CJS one).
  const manifest = createRequire(import.meta.url).resolve('tsx/package.json');
  const exports = (JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports;
  const tsx = new URL(exports['./esm/api']!.import.default, pathToFileURL(manifest)).href;
  return `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(module.href)});`;
}

/** Probes on this thread (tests, tools). */
export function inlineProbe(): Probe {
  return {
    health: (url, t) => probes.health(url, t) as Promise<void>,
    metrics: (url, t) => probes.metrics(url, t) as Promise<VllmLoad>,
    models: (url, t) => probes.models(url, t) as Promise<string[]>,
    close: async () => {},
  };
}

export interface ProbeCall {
  id: number;
  kind: Kind;
  url: string;
  timeoutMs: number;
}
export type ProbeReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string; timedOut: boolean };

/** The worker's side: answers each call with the probe's result or its error. */
export async function answer(call: ProbeCall): Promise<ProbeReply> {
  try {
    return { id: call.id, ok: true, value: await probes[call.kind](call.url, call.timeoutMs) };
  } catch (err) {
    const e = err as GetError;
    return { id: call.id, ok: false, message: e.message ?? String(err), timedOut: e.timedOut === true };
  }
}

/**
 * Probes on a worker thread: sockets, response parsing and the /metrics text (tens of KB from
 * each backend every scrape interval) never hold up the event loop that answers Envoy; the
 * router's thread sees one small message per probe. A worker that dies is replaced on the
 * next call; the calls it held fail.
 */
export function workerProbe(): Probe {
  let worker: Worker | undefined;
  let nextId = 1;
  const pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();

  const failAll = (message: string) => {
    for (const p of pending.values()) p.reject(new GetError(message));
    pending.clear();
  };

  const start = (): Worker => {
    // Compiled, the worker is probe-worker.js beside this file; under the TypeScript test
    // runner it is the .ts source, loaded through tsx's loader.
    const w = import.meta.url.endsWith('.ts')
      ? new Worker(new URL(`data:text/javascript,${encodeURIComponent(tsxEntry(new URL('./probe-worker.ts', import.meta.url)))}`))
      : new Worker(new URL('./probe-worker.js', import.meta.url));
    w.unref();
    w.on('message', (reply: ProbeReply) => {
      const p = pending.get(reply.id);
      if (!p) return;
      pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(new GetError(reply.message, reply.timedOut));
    });
    w.on('error', (err) => failAll(`probe worker failed: ${err.message}`));
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      failAll('probe worker exited');
    });
    return w;
  };

  const call = (kind: Kind, url: string, timeoutMs: number) =>
    new Promise<unknown>((resolve, reject) => {
      worker ??= start();
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, kind, url, timeoutMs } satisfies ProbeCall);
    });

  return {
    health: (url, t) => call('health', url, t) as Promise<void>,
    metrics: (url, t) => call('metrics', url, t) as Promise<VllmLoad>,
    models: (url, t) => call('models', url, t) as Promise<string[]>,
    async close() {
      const w = worker;
      worker = undefined;
      if (w) await w.terminate();
    },
  };
}
