/**
 * /metrics in the names, help texts, labels and buckets of vLLM's V1 PrometheusStatLogger
 * (vllm/v1/metrics/loggers.py), so scrapers and routers written for vLLM read it unchanged.
 */
import type { EngineObserver, EngineStats, FinishReason, FinishedRequest } from './engine.js';
import type { EngineOptions } from './engine-options.js';
import { build125Buckets, createHistogram, formatValue, header, sampleLine, type Histogram, type Labels } from './prometheus.js';

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0,
];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
  7680.0,
];
const ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
const FINISH_REASONS: readonly FinishReason[] = ['stop', 'length', 'abort'];

export interface SimulatorMetrics {
  readonly observer: EngineObserver;
  render(stats: EngineStats): string;
}

export interface MetricsOptions {
  /** Served model names; the first labels every engine-wide series, as in vLLM. */
  models: readonly string[];
  engine: EngineOptions;
  /** LoRA enabled (--enable-lora): vllm:lora_requests_info is exported. */
  lora?: boolean;
}

/** Earlier label values of vllm:lora_requests_info kept on the page (vLLM keeps every one). */
const LORA_SERIES_KEPT = 16;

export function createMetrics({ models, engine, lora = false }: MetricsOptions): SimulatorMetrics {
  /** Each label set of vllm:lora_requests_info with the time it was last current, oldest first. */
  const loraSeries = new Map<string, { labels: Labels; at: number }>();
  const primary = models[0] ?? '';
  const base: Labels = [
    ['model_name', primary],
    ['engine', '0'],
  ];
  const ttft = createHistogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS);
  const itl = createHistogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', ITL_BUCKETS);
  const e2e = createHistogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', REQUEST_LATENCY_BUCKETS);
  const queue = createHistogram(
    'vllm:request_queue_time_seconds',
    'Histogram of time spent in WAITING phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );
  const inference = createHistogram(
    'vllm:request_inference_time_seconds',
    'Histogram of time spent in RUNNING phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );
  const prefill = createHistogram(
    'vllm:request_prefill_time_seconds',
    'Histogram of time spent in PREFILL phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );
  const decode = createHistogram(
    'vllm:request_decode_time_seconds',
    'Histogram of time spent in DECODE phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );
  const tokenBuckets = build125Buckets(engine.maxModelLen);
  const promptTokens = createHistogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', tokenBuckets);
  const generationTokens = createHistogram(
    'vllm:request_generation_tokens',
    'Number of generation tokens processed.',
    tokenBuckets,
  );
  const prefillComputed = createHistogram(
    'vllm:request_prefill_kv_computed_tokens',
    'Histogram of new KV tokens computed during prefill (excluding cached tokens).',
    tokenBuckets,
  );
  const iterationTokens = createHistogram(
    'vllm:iteration_tokens_total',
    'Histogram of number of tokens per engine_step.',
    ITERATION_TOKEN_BUCKETS,
  );
  const histograms: Histogram[] = [
    iterationTokens,
    ttft,
    itl,
    e2e,
    queue,
    inference,
    prefill,
    decode,
    promptTokens,
    generationTokens,
    prefillComputed,
  ];

  // Finished requests per (served model name, reason): vLLM pre-creates every reason at 0.
  const success = new Map<string, Record<FinishReason, number>>();
  const successFor = (model: string) => {
    let entry = success.get(model);
    if (!entry) {
      entry = { stop: 0, length: 0, abort: 0 };
      success.set(model, entry);
    }
    return entry;
  };
  for (const model of models) successFor(model);

  function onFinish(result: FinishedRequest): void {
    successFor(result.model)[result.finishReason]++;
    const t = result.timings;
    e2e.observe((t.finishedMs - t.arrivalMs) / 1000);
    if (result.finishReason === 'abort') return;
    promptTokens.observe(result.promptTokens);
    generationTokens.observe(result.outputTokens);
    prefillComputed.observe(Math.max(0, result.promptTokens - result.cachedTokens));
    if (t.scheduledMs !== null) {
      queue.observe((t.scheduledMs - t.arrivalMs) / 1000);
      const last = t.lastTokenMs ?? t.finishedMs;
      inference.observe((last - t.scheduledMs) / 1000);
      if (t.firstTokenMs !== null) {
        prefill.observe((t.firstTokenMs - t.scheduledMs) / 1000);
        decode.observe((last - t.firstTokenMs) / 1000);
      }
    }
  }

  const observer: EngineObserver = {
    onFirstToken: (s) => ttft.observe(s),
    onInterToken: (s) => itl.observe(s),
    onStep: (tokens) => iterationTokens.observe(tokens),
    onFinish,
  };

  // vLLM 0.32's CacheConfig labels (test/fixtures/vllm-sample), with this engine's sizes.
  const cacheInfo: Labels = [
    ['_block_size_resolved', 'True'],
    ['block_size', String(engine.blockSize)],
    ['cache_dtype', 'auto'],
    ['cache_hit_alignment_tokens', 'None'],
    ['effective_attention_block_size', String(engine.blockSize)],
    ['enable_mamba_shared_prefix_checkpoint', 'False'],
    ['enable_prefix_caching', 'True'],
    ['engine', '0'],
    ['gpu_memory_utilization', '0.92'],
    ['hash_block_size', 'None'],
    ['is_attention_free', 'False'],
    ['kv_cache_dtype_skip_layers', '[]'],
    ['kv_cache_layout', 'None'],
    ['kv_cache_max_concurrency', formatValue((engine.numGpuBlocks * engine.blockSize) / engine.maxModelLen)],
    ['kv_cache_memory_bytes', '1073741824'],
    ['kv_cache_size_tokens', String(engine.numGpuBlocks * engine.blockSize)],
    ['kv_offloading_backend', 'native'],
    ['kv_offloading_size', 'None'],
    ['kv_sharing_fast_prefill', 'False'],
    ['mamba_block_size', 'None'],
    ['mamba_cache_dtype', 'auto'],
    ['mamba_cache_mode', 'none'],
    ['mamba_page_size_padded', 'None'],
    ['mamba_ssm_cache_dtype', 'float32'],
    ['num_cpu_blocks', 'None'],
    ['num_gpu_blocks', String(engine.numGpuBlocks)],
    ['num_gpu_blocks_override', String(engine.numGpuBlocks)],
    ['prefix_cache_retention_interval', '0'],
    ['prefix_caching_hash_algo', 'sha256'],
    ['prefix_match_unit', 'None'],
    ['replayssm_buffer_len', '16'],
    ['skip_page_size_padded', 'None'],
    ['sliding_window', 'None'],
    ['swa_bounded_replay', 'True'],
    ['use_kda_recoverssm', 'False'],
    ['use_replayssm', 'False'],
    ['user_specified_block_size', 'True'],
  ];

  function render(stats: EngineStats): string {
    const lines: string[] = [];
    const gauge = (name: string, help: string, value: number) =>
      lines.push(...header(name, 'gauge', help), sampleLine(name, base, value));
    const counter = (name: string, help: string, value: number) =>
      lines.push(...header(name, 'counter', help), sampleLine(name, base, value));

    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', stats.running);
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', stats.waiting);
    // Every waiting request here waits for a free slot or KV blocks; none is deferred.
    lines.push(...header('vllm:num_requests_waiting_by_reason', 'gauge', 'Number of requests waiting, by reason.'));
    lines.push(sampleLine('vllm:num_requests_waiting_by_reason', [...base, ['reason', 'capacity']], stats.waiting));
    lines.push(sampleLine('vllm:num_requests_waiting_by_reason', [...base, ['reason', 'deferred']], 0));
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', stats.kvCacheUsage);
    counter(
      'vllm:prefix_cache_queries_total',
      'Prefix cache queries, in terms of number of queried tokens.',
      stats.prefixCacheQueries,
    );
    counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.', stats.prefixCacheHits);
    counter('vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.', stats.numPreemptions);
    counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.', stats.promptTokens);
    counter('vllm:prompt_tokens_cached_total', 'Number of cached prompt tokens (local prefix cache hits).', stats.promptTokensCached);
    lines.push(...header('vllm:prompt_tokens_by_source_total', 'counter', 'Number of prompt tokens by source.'));
    const bySource: Array<[string, number]> = [
      ['local_compute', stats.promptTokens - stats.promptTokensCached],
      ['local_cache_hit', stats.promptTokensCached],
      ['external_kv_transfer', 0],
    ];
    for (const [source, value] of bySource) lines.push(sampleLine('vllm:prompt_tokens_by_source_total', [...base, ['source', source]], value));
    counter('vllm:generation_tokens_total', 'Number of generation tokens processed.', stats.generationTokens);

    lines.push(...header('vllm:request_success_total', 'counter', 'Count of successfully processed requests.'));
    for (const [model, byReason] of success) {
      for (const reason of FINISH_REASONS) {
        const labels: Labels = [
          ['model_name', model],
          ['engine', '0'],
          ['finished_reason', reason],
        ];
        lines.push(sampleLine('vllm:request_success_total', labels, byReason[reason]));
      }
    }
    for (const h of histograms) lines.push(...h.render(base));

    lines.push(...header('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig'));
    lines.push(sampleLine('vllm:cache_config_info', cacheInfo, 1));
    if (lora) {
      // As vLLM: the current label values set to the time, earlier ones left as they were.
      const labels: Labels = [
        ['max_lora', String(engine.maxLoras)],
        ['running_lora_adapters', stats.runningLoras.join(',')],
        ['waiting_lora_adapters', stats.waitingLoras.join(',')],
      ];
      const key = JSON.stringify(labels);
      loraSeries.delete(key);
      loraSeries.set(key, { labels, at: Date.now() / 1000 });
      if (loraSeries.size > LORA_SERIES_KEPT) loraSeries.delete(loraSeries.keys().next().value!);
      lines.push(...header('vllm:lora_requests_info', 'gauge', 'Running stats on lora requests.'));
      for (const { labels: l, at } of loraSeries.values()) lines.push(sampleLine('vllm:lora_requests_info', l, at));
    }
    return `${lines.join('\n')}\n`;
  }

  return { observer, render };
}
