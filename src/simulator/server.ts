/**
 * HTTP front of the simulator: vLLM's OpenAI-compatible server routes over node:http, plus
 * GET /_sim/stats for benchmarks that run simulators in other processes.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { modelDirectoryEncoder, STAND_IN_ENCODER } from './prompt-encoder.js';
import { createEngine, type EngineStats, type FinishReason } from './engine.js';
import { resolveEngineOptions, type EngineOptions } from './engine-options.js';
import { apiError, METHOD_NOT_ALLOWED_DETAIL, NOT_FOUND_DETAIL } from './errors.js';
import { resolveModel, type ServingContext } from './generation.js';
import { readJsonBody, sendEmpty, sendError, sendJson, sendText } from './http-io.js';
import type { KvEvents } from './kv-cache.js';
import type { KvEventsOptions } from './kv-events-config.js';
import { startKvEventPublisher, type KvEventPublisher } from './kv-events.js';
import { createMetrics } from './metrics.js';
import { keepSeries } from './metrics-by-name.js';
import { handleChatCompletion, handleCompletion } from './openai-handlers.js';
import { parseDetokenizeRequest, parseTokenizeRequest } from './openai-requests.js';
import { modelList } from './openai-responses.js';
import { decode } from './tokenizer.js';

export const SIMULATED_VLLM_VERSION = '0.11.0-sim';

export interface SimulatorOptions {
  host?: string;
  port?: number;
  /** Served model names (vLLM --served-model-name); the first is the primary. */
  models: string[];
  engine?: Partial<EngineOptions>;
  /** Publish KV cache events over ZMQ as vLLM's --kv-events-config does; off when absent. */
  kvEvents?: KvEventsOptions;
  /** A model directory whose tokenizer and chat template replace the stand-in ones. */
  tokenizer?: string;
  /** LoRA adapters served beside the model (vLLM --enable-lora --lora-modules NAME=PATH). */
  loraModules?: ReadonlyArray<{ name: string; path: string }>;
}

export interface SimulatorStats {
  /** Finished plus aborted requests per served model name. */
  requestsByModel: Record<string, number>;
  requestsTotal: number;
  requestsByFinishReason: Record<FinishReason, number>;
  running: number;
  waiting: number;
  promptTokens: number;
  prefixCacheQueries: number;
  /** In tokens. */
  prefixCacheHits: number;
  generationTokens: number;
  /** 0..1 */
  kvCacheUsage: number;
  numPreemptions: number;
  /** Adapters loaded into a device slot so far. */
  loraLoads: number;
}

/**
 * Failures a test can inject, each as a real server might fail. A server that refuses
 * connections is one that was closed (`close()`); start a new one on the same port to revive it.
 */
export type Fault =
  | { kind: 'none' }
  /** Inference endpoints and /health answer this status with a vLLM error body. */
  | { kind: 'error'; status: number }
  /** Every request except /_sim/* is accepted and never answered. */
  | { kind: 'hang' }
  /** Streaming responses are cut (socket destroyed) after this many SSE events. */
  | { kind: 'die-mid-stream'; afterEvents: number }
  /** /metrics answers after a delay. */
  | { kind: 'slow-metrics'; delayMs: number }
  /** /health answers after a delay, as a busy server's API process does. */
  | { kind: 'slow-health'; delayMs: number }
  /** /metrics answers 200 with text that is not a metrics page. */
  | { kind: 'garbage-metrics' }
  /** /v1/models answers 404, as a vLLM-compatible server without it would. */
  | { kind: 'no-models' };

export interface SimulatorHandle {
  url: string;
  port: number;
  stats(): SimulatorStats;
  /** Injects a failure mode (also POST /_sim/fault with the same JSON); `{kind:'none'}` heals. */
  setFault(fault: Fault): void;
  /** KV cache block stored / removed / cleared events, shaped like vLLM's KV events. */
  kvEvents: KvEvents;
  /** The ZMQ publisher of those events, when kvEvents was given. */
  kvEventPublisher: KvEventPublisher | null;
  /** Stops accepting, aborts in-flight work, resolves once every connection is closed. */
  close(): Promise<void>;
}

type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

const sendMetrics = (res: ServerResponse, page: string) => sendText(res, 200, 'text/plain; version=0.0.4; charset=utf-8', page);

export async function startSimulator(options: SimulatorOptions): Promise<SimulatorHandle> {
  const models = [...options.models];
  if (models.length === 0) throw new RangeError('at least one served model name is required');
  if (models.some((m) => typeof m !== 'string' || m === '')) throw new RangeError('model names must be non-empty strings');
  if (new Set(models).size !== models.length) throw new RangeError(`duplicate served model names: ${models.join(', ')}`);
  const encoder = options.tokenizer === undefined ? STAND_IN_ENCODER : await modelDirectoryEncoder(options.tokenizer);
  const engineOptions = resolveEngineOptions(options.engine);
  const adapters = new Map((options.loraModules ?? []).map((m) => [m.name, m.path]));
  const clash = [...adapters.keys()].find((name) => models.includes(name));
  if (clash !== undefined) throw new RangeError(`LoRA adapter '${clash}' has the name of a served model`);
  const metrics = createMetrics({ models, engine: engineOptions, lora: options.loraModules !== undefined });
  const engine = createEngine(engineOptions, { observer: metrics.observer });
  const ctx: ServingContext = { engine, models, maxModelLen: engineOptions.maxModelLen, seed: engineOptions.seed, encoder, adapters };
  let closing = false;
  let fault: Fault = { kind: 'none' };
  const publisher = options.kvEvents ? await startKvEventPublisher(engine.kvEvents, options.kvEvents) : null;

  function stats(): SimulatorStats {
    const s: EngineStats = engine.stats();
    const requestsByModel: Record<string, number> = {};
    for (const m of [...models, ...adapters.keys()]) requestsByModel[m] = 0;
    Object.assign(requestsByModel, s.requestsByModel);
    return {
      requestsByModel,
      requestsTotal: s.requestsTotal,
      requestsByFinishReason: s.requestsByFinishReason,
      running: s.running,
      waiting: s.waiting,
      promptTokens: s.promptTokens,
      prefixCacheQueries: s.prefixCacheQueries,
      prefixCacheHits: s.prefixCacheHits,
      generationTokens: s.generationTokens,
      kvCacheUsage: s.kvCacheUsage,
      numPreemptions: s.numPreemptions,
      loraLoads: s.loraLoads,
    };
  }

  const routes: Record<string, Partial<Record<string, Route>>> = {
    '/health': { GET: (_req, res) => sendEmpty(res, 200) },
    '/ping': { GET: (_req, res) => sendEmpty(res, 200), POST: (_req, res) => sendEmpty(res, 200) },
    '/version': { GET: (_req, res) => sendJson(res, 200, { version: SIMULATED_VLLM_VERSION }) },
    '/v1/models': {
      GET: (_req, res) => sendJson(res, 200, modelList(models, engineOptions.maxModelLen, Math.floor(Date.now() / 1000), adapters)),
    },
    '/metrics': { GET: (_req, res) => sendMetrics(res, metrics.render(engine.stats())) },
    // As vLLM's prometheus_client mount: the series named by `?name[]=` only, all without.
    '/metrics/': {
      GET: (req, res) => {
        const names = new URL(req.url ?? '/', 'http://sim').searchParams.getAll('name[]');
        const page = metrics.render(engine.stats());
        sendMetrics(res, names.length === 0 ? page : keepSeries(page, new Set(names)));
      },
    },
    // As vLLM: 200 whether or not the cache could be dropped (it cannot while requests hold blocks).
    '/reset_prefix_cache': {
      POST: (req, res) => {
        req.resume();
        engine.resetPrefixCache();
        sendEmpty(res, 200);
      },
    },
    '/_sim/stats': { GET: (_req, res) => sendJson(res, 200, stats()) },
    '/_sim/fault': {
      POST: async (req, res) => {
        fault = (await readJsonBody(req)) as Fault;
        sendJson(res, 200, fault);
      },
    },
    '/v1/chat/completions': {
      POST: async (req, res) => handleChatCompletion(ctx, req, res, await readJsonBody(req)),
    },
    '/v1/completions': {
      POST: async (req, res) => handleCompletion(ctx, req, res, await readJsonBody(req)),
    },
    '/tokenize': {
      POST: async (req, res) => {
        const request = parseTokenizeRequest(await readJsonBody(req));
        resolveModel(ctx, request.model);
        const tokens = request.turns ? ctx.encoder.chat(request.turns, request.addGenerationPrompt) : ctx.encoder.text(request.prompt ?? '', request.addSpecialTokens);
        sendJson(res, 200, { count: tokens.length, max_model_len: engineOptions.maxModelLen, tokens, token_strs: null });
      },
    },
    '/detokenize': {
      POST: async (req, res) => {
        const request = parseDetokenizeRequest(await readJsonBody(req));
        resolveModel(ctx, request.model);
        sendJson(res, 200, { prompt: decode(request.tokens) });
      },
    },
  };

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const methods = routes[path];
    if (!methods) {
      sendJson(res, 404, NOT_FOUND_DETAIL);
      return;
    }
    const route = methods[req.method ?? 'GET'] ?? (req.method === 'HEAD' ? methods['GET'] : undefined);
    if (!route) {
      res.setHeader('allow', Object.keys(methods).join(', '));
      sendJson(res, 405, METHOD_NOT_ALLOWED_DETAIL);
      return;
    }
    if (closing) throw apiError('The server is shutting down.', 'ServiceUnavailableError', 503);
    if (!path.startsWith('/_sim/') && injectFault(path, req, res)) return;
    await route(req, res);
  }

  /** Applies the injected fault; true when it answered (or swallowed) the request. */
  function injectFault(path: string, req: IncomingMessage, res: ServerResponse): boolean {
    const inference = path.startsWith('/v1/') || path === '/tokenize' || path === '/detokenize';
    switch (fault.kind) {
      case 'none':
        return false;
      case 'hang':
        req.resume();
        return true;
      case 'no-models':
        if (path !== '/v1/models') return false;
        req.resume();
        sendJson(res, 404, NOT_FOUND_DETAIL);
        return true;
      case 'error':
        if (!inference && path !== '/health') return false;
        req.resume();
        sendJson(res, fault.status, { error: { message: 'Injected failure', type: 'InternalServerError', param: null, code: fault.status } });
        return true;
      case 'die-mid-stream': {
        if (!inference) return false;
        let events = 0;
        const limit = fault.afterEvents;
        const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
        res.write = ((chunk: unknown, ...rest: unknown[]) => {
          if (++events > limit) {
            res.socket?.destroy();
            return false;
          }
          return write(chunk, ...rest);
        }) as typeof res.write;
        return false;
      }
      case 'slow-health':
        if (path !== '/health') return false;
        setTimeout(() => {
          if (!res.destroyed) res.writeHead(200, { 'content-length': '0' }).end();
        }, fault.delayMs);
        return true;
      case 'slow-metrics':
        if (!path.startsWith('/metrics')) return false;
        setTimeout(() => {
          if (!res.destroyed) sendMetrics(res, metrics.render(engine.stats()));
        }, fault.delayMs);
        return true;
      case 'garbage-metrics':
        if (!path.startsWith('/metrics')) return false;
        sendText(res, 200, 'text/plain', '<html><body>502 Bad Gateway</body></html>\n\u0000\u0001 not metrics');
        return true;
    }
  }

  const server = createServer((req, res) => {
    dispatch(req, res).catch((err: unknown) => sendError(res, err));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    engine.stop();
    await publisher?.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | null = null;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    stats,
    kvEvents: engine.kvEvents,
    kvEventPublisher: publisher,
    setFault(next) {
      fault = next;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        engine.stop();
        server.closeAllConnections();
      }).then(() => publisher?.close());
      return closed;
    },
  };
}
