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
  blockSize: number | undefined;
  numGpuBlocks: number | undefined;
  /** Model names seen in the `model_name` label. */
  modelNames: string[];
}

// Current names first; older or vLLM-compatible servers use the others.
const RUNNING = ['vllm:num_requests_running'];
const WAITING = ['vllm:num_requests_waiting'];
const KV_USAGE = ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'];
const PREFIX_QUERIES = ['vllm:prefix_cache_queries_total', 'vllm:prefix_cache_queries'];
const PREFIX_HITS = ['vllm:prefix_cache_hits_total', 'vllm:prefix_cache_hits'];
const PROMPT_TOKENS = ['vllm:prompt_tokens_total', 'vllm:prompt_tokens'];
const COMPLETED = ['vllm:request_success_total', 'vllm:request_success'];
const CACHE_CONFIG = 'vllm:cache_config_info';

const WANTED = new Set([...RUNNING, ...WAITING, ...KV_USAGE, ...PREFIX_QUERIES, ...PREFIX_HITS, ...PROMPT_TOKENS, ...COMPLETED, CACHE_CONFIG]);

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
    blockSize,
    numGpuBlocks: gpuBlocks.length > 0 ? gpuBlocks.reduce((a, b) => a + b, 0) : undefined,
    modelNames: [...modelNames],
  };
}

function clamp01(value: number): number {
  return Math.min(1, Math.max(0, value));
}
