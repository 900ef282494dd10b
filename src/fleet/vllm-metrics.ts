import { parsePrometheusText, type Sample } from './prometheus-text.js';

/** What routing needs from one scrape of a vLLM server's /metrics. */
export interface VllmLoad {
  running: number;
  waiting: number;
  /** KV-cache blocks in use, 0..1, averaged over engines; undefined if not exposed. */
  kvCacheUsage: number | undefined;
  prefixCacheQueries: number | undefined;
  prefixCacheHits: number | undefined;
  /** Prompt tokens processed since the server started (vllm:prompt_tokens_total). */
  promptTokensTotal: number | undefined;
  /** Requests it has completed since it started (vllm:request_success_total, every finish reason). */
  requestsCompleted: number | undefined;
  /** Tokens it has generated since it started (vllm:generation_tokens_total). */
  generationTokensTotal: number | undefined;
  /**
   * Requests waiting for a slot or KV space (num_requests_waiting_by_reason{reason="capacity"}),
   * as opposed to deferred ones; undefined where vLLM does not split the queue.
   */
  waitingForCapacity: number | undefined;
  /** Its own per-request histograms since it started, summed over engines. */
  histograms: VllmHistograms;
  /**
   * Engine steps run with at most `le` scheduled tokens (vllm:iteration_tokens_total's buckets,
   * cumulative, summed over engines), by increasing `le`; undefined where not exposed.
   */
  stepTokenBuckets: ReadonlyArray<{ le: number; steps: number }> | undefined;
  blockSize: number | undefined;
  numGpuBlocks: number | undefined;
  /** Model names seen in the `model_name` label. */
  modelNames: string[];
  /** Its LoRA adapters at work (vllm:lora_requests_info); undefined without LoRA enabled. */
  lora: LoraActivity | undefined;
}

/**
 * Adapters with requests running or waiting on a server, and how many adapters one batch may
 * hold (--max-loras): a request for any other adapter waits until one of them has no
 * request left running.
 */
export interface LoraActivity {
  maxLoras: number;
  running: string[];
  waiting: string[];
}

/** A histogram's running sum and count. */
export interface SumCount {
  sum: number;
  count: number;
}

/** What a histogram gained between two scrapes; nothing if it went back (the server restarted). */
export const delta = (now: SumCount | undefined, before: SumCount | undefined) =>
  now && before && now.count >= before.count && now.sum >= before.sum ? { sum: now.sum - before.sum, count: now.count - before.count } : undefined;

/** What a counter gained between two scrapes; nothing if it went back. */
export const counterDelta = (now: number | undefined, before: number | undefined) =>
  now !== undefined && before !== undefined && now >= before ? now - before : undefined;

/** Prompt tokens not served from the prefix cache between two scrapes, from the counters. */
export function uncachedPromptTokens(now: VllmLoad, before: VllmLoad): number | undefined {
  const prompt = counterDelta(now.promptTokensTotal, before.promptTokensTotal);
  return prompt === undefined ? undefined : Math.max(0, prompt - (counterDelta(now.prefixCacheHits, before.prefixCacheHits) ?? 0));
}

/**
 * Steps between two scrapes that scheduled more tokens than `batch` decodes: those that
 * prefilled (vllm:iteration_tokens_total's buckets above the bucket that holds `batch`).
 */
export function prefillSteps(metrics: VllmLoad, before: VllmLoad, batch: number): number | undefined {
  const now = metrics.stepTokenBuckets;
  const then = before.stepTokenBuckets;
  if (!now || !then || now.length !== then.length || now.length === 0) return undefined;
  const decode = now.findIndex((b) => b.le >= Math.max(1, batch));
  if (decode === -1) return undefined;
  const all = now[now.length - 1]!.steps - then[then.length - 1]!.steps;
  const decoding = now[decode]!.steps - then[decode]!.steps;
  return all >= decoding && decoding >= 0 ? all - decoding : undefined;
}

/** Seconds, except the token counts. Each but TTFT and inter-token is observed when a request finishes. */
export interface VllmHistograms {
  /** Arrival to first token. */
  ttft: SumCount | undefined;
  /** Between two tokens of one request: one engine step while it decodes. */
  interToken: SumCount | undefined;
  /** Arrival to first scheduled (waiting for a slot or KV space). */
  queue: SumCount | undefined;
  /** First scheduled to first token. */
  prefill: SumCount | undefined;
  /** First scheduled to finished: how long a request holds its slot. */
  inference: SumCount | undefined;
  /** Prompt tokens it computed (not found in its prefix cache), per request. */
  prefillComputedTokens: SumCount | undefined;
  /** Prompt tokens per request, cached or not. */
  promptTokens: SumCount | undefined;
  /** Tokens generated per request. */
  generationTokens: SumCount | undefined;
  /** Tokens scheduled per engine step (prefill chunks and decodes): its count is the steps run. Observed every step. */
  iterationTokens: SumCount | undefined;
}

// Current names first; older or vLLM-compatible servers use the others.
const RUNNING = ['vllm:num_requests_running'];
const WAITING = ['vllm:num_requests_waiting'];
const KV_USAGE = ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'];
const PREFIX_QUERIES = ['vllm:prefix_cache_queries_total', 'vllm:prefix_cache_queries'];
const PREFIX_HITS = ['vllm:prefix_cache_hits_total', 'vllm:prefix_cache_hits'];
const PROMPT_TOKENS = ['vllm:prompt_tokens_total', 'vllm:prompt_tokens'];
const COMPLETED = ['vllm:request_success_total', 'vllm:request_success'];
/** A page without any of the histograms (older or vLLM-compatible servers). */
export const NO_HISTOGRAMS: Readonly<VllmHistograms> = Object.freeze({
  ttft: undefined,
  interToken: undefined,
  queue: undefined,
  prefill: undefined,
  inference: undefined,
  prefillComputedTokens: undefined,
  promptTokens: undefined,
  generationTokens: undefined,
  iterationTokens: undefined,
});

const GENERATION_TOKENS = ['vllm:generation_tokens_total', 'vllm:generation_tokens'];
const WAITING_BY_REASON = 'vllm:num_requests_waiting_by_reason';
const CACHE_CONFIG = 'vllm:cache_config_info';
const LORA_INFO = 'vllm:lora_requests_info';
const HISTOGRAMS: Record<keyof VllmHistograms, string[]> = {
  ttft: ['vllm:time_to_first_token_seconds'],
  interToken: ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds'],
  queue: ['vllm:request_queue_time_seconds'],
  prefill: ['vllm:request_prefill_time_seconds'],
  inference: ['vllm:request_inference_time_seconds'],
  prefillComputedTokens: ['vllm:request_prefill_kv_computed_tokens'],
  promptTokens: ['vllm:request_prompt_tokens'],
  generationTokens: ['vllm:request_generation_tokens'],
  iterationTokens: ['vllm:iteration_tokens_total'],
};
const HISTOGRAM_SERIES = Object.values(HISTOGRAMS).flatMap((names) => names.flatMap((n) => [`${n}_sum`, `${n}_count`]));
const STEP_TOKEN_BUCKETS = 'vllm:iteration_tokens_total_bucket';

const WANTED = new Set([
  ...RUNNING, ...WAITING, ...KV_USAGE, ...PREFIX_QUERIES, ...PREFIX_HITS, ...PROMPT_TOKENS, ...COMPLETED, ...GENERATION_TOKENS,
  WAITING_BY_REASON, CACHE_CONFIG, LORA_INFO, STEP_TOKEN_BUCKETS, ...HISTOGRAM_SERIES,
]);
/** Every series name the parser reads: a server may be asked for these alone (see probe.ts). */
export const READ_SERIES: readonly string[] = Object.freeze([...WANTED].sort());

export class MetricsFormatError extends Error {
  override name = 'MetricsFormatError';
}

/**
 * Reads the load figures out of a vLLM /metrics page. Series that differ only in labels such
 * as `engine` (data-parallel ranks) are summed, never "last one wins". A page without the
 * request gauges is not a vLLM page and is rejected, so a misconfigured backend is never
 * mistaken for an idle one.
 */
export function parseVllmMetrics(text: string): VllmLoad {
  const { samples } = parsePrometheusText(text, (name) => WANTED.has(name));
  const byName = new Map<string, Sample[]>();
  for (const sample of samples) {
    if (!Number.isFinite(sample.value)) continue;
    let list = byName.get(sample.name);
    if (!list) byName.set(sample.name, (list = []));
    list.push(sample);
  }
  const first = (names: string[]) => names.map((n) => byName.get(n)).find((s) => s && s.length > 0);
  const sum = (names: string[]) => first(names)?.reduce((acc, s) => acc + s.value, 0);

  const running = sum(RUNNING);
  const waiting = sum(WAITING);
  if (running === undefined || waiting === undefined) {
    throw new MetricsFormatError('no vllm:num_requests_running / vllm:num_requests_waiting series in /metrics');
  }
  const kv = first(KV_USAGE);
  const cacheConfig = byName.get(CACHE_CONFIG) ?? [];
  const blockSize = cacheConfig.map((s) => Number(s.labels.block_size)).find((n) => Number.isFinite(n) && n > 0);
  const gpuBlocks = cacheConfig.map((s) => Number(s.labels.num_gpu_blocks)).filter((n) => Number.isFinite(n) && n > 0);

  const sumCount = (names: string[]): SumCount | undefined => {
    const name = names.find((n) => byName.has(`${n}_count`));
    const count = name && sum([`${name}_count`]);
    const total = name && sum([`${name}_sum`]);
    return typeof count === 'number' && typeof total === 'number' ? { sum: total, count } : undefined;
  };
  const histograms: VllmHistograms = {
    ttft: sumCount(HISTOGRAMS.ttft),
    interToken: sumCount(HISTOGRAMS.interToken),
    queue: sumCount(HISTOGRAMS.queue),
    prefill: sumCount(HISTOGRAMS.prefill),
    inference: sumCount(HISTOGRAMS.inference),
    prefillComputedTokens: sumCount(HISTOGRAMS.prefillComputedTokens),
    promptTokens: sumCount(HISTOGRAMS.promptTokens),
    generationTokens: sumCount(HISTOGRAMS.generationTokens),
    iterationTokens: sumCount(HISTOGRAMS.iterationTokens),
  };
  const byReason = byName.get(WAITING_BY_REASON);

  const modelNames = new Set<string>();
  for (const s of [...(first(RUNNING) ?? []), ...(first(WAITING) ?? [])]) {
    if (s.labels.model_name) modelNames.add(s.labels.model_name);
  }
  return {
    running,
    waiting,
    kvCacheUsage: kv ? clamp01(kv.reduce((acc, s) => acc + s.value, 0) / kv.length) : undefined,
    prefixCacheQueries: sum(PREFIX_QUERIES),
    prefixCacheHits: sum(PREFIX_HITS),
    promptTokensTotal: sum(PROMPT_TOKENS),
    requestsCompleted: sum(COMPLETED),
    generationTokensTotal: sum(GENERATION_TOKENS),
    waitingForCapacity: byReason?.filter((s) => s.labels.reason === 'capacity').reduce((acc, s) => acc + s.value, 0),
    histograms,
    stepTokenBuckets: stepTokenBuckets(byName.get(STEP_TOKEN_BUCKETS)),
    blockSize,
    numGpuBlocks: gpuBlocks.length > 0 ? gpuBlocks.reduce((a, b) => a + b, 0) : undefined,
    modelNames: [...modelNames],
    lora: loraActivity(byName.get(LORA_INFO)),
  };
}

/** Bucket counts by bound, summed over engines (data-parallel ranks share the bounds). */
function stepTokenBuckets(series: Sample[] | undefined): Array<{ le: number; steps: number }> | undefined {
  if (!series || series.length === 0) return undefined;
  const byBound = new Map<number, number>();
  for (const s of series) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (!Number.isNaN(le)) byBound.set(le, (byBound.get(le) ?? 0) + s.value);
  }
  return [...byBound].map(([le, steps]) => ({ le, steps })).sort((a, b) => a.le - b.le);
}

const adapterList = (label: string | undefined) => (label ? label.split(',').filter((name) => name !== '') : []);

/**
 * vLLM sets the series of the current label values to the time of its last scrape-worthy
 * step and leaves the series of earlier values on the page: the newest series is the state.
 */
function loraActivity(series: Sample[] | undefined): LoraActivity | undefined {
  let newest: Sample | undefined;
  for (const s of series ?? []) if (!newest || s.value > newest.value) newest = s;
  const maxLoras = Number(newest?.labels.max_lora);
  if (!newest || !Number.isSafeInteger(maxLoras) || maxLoras < 1) return undefined;
  return { maxLoras, running: adapterList(newest.labels.running_lora_adapters), waiting: adapterList(newest.labels.waiting_lora_adapters) };
}

function clamp01(value: number): number {
  return Math.min(1, Math.max(0, value));
}
