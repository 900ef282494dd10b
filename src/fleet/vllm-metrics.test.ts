import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from './prometheus-text.js';
import { MetricsFormatError, NO_HISTOGRAMS, parseVllmMetrics } from './vllm-metrics.js';

const page = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama-8b"} 3.0
vllm:num_requests_running{engine="1",model_name="llama-8b"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama-8b"} 4.0
vllm:num_requests_waiting{engine="1",model_name="llama-8b"} 0.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama-8b"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="llama-8b"} 0.25
vllm:prefix_cache_queries_total{engine="0",model_name="llama-8b"} 1000.0
vllm:prefix_cache_hits_total{engine="0",model_name="llama-8b"} 600.0
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",num_gpu_blocks="2048"} 1.0
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="1",num_gpu_blocks="2048"} 1.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="llama-8b"} 0.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="llama-8b"} 3.5
vllm:time_to_first_token_seconds_count{engine="0",model_name="llama-8b"} 10.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="llama-8b"} 1.5
vllm:time_to_first_token_seconds_count{engine="1",model_name="llama-8b"} 5.0
vllm:time_per_output_token_seconds_sum{engine="0",model_name="llama-8b"} 2.0
vllm:time_per_output_token_seconds_count{engine="0",model_name="llama-8b"} 100.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="llama-8b",reason="capacity"} 3.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="llama-8b",reason="deferred"} 1.0
vllm:generation_tokens_total{engine="0",model_name="llama-8b"} 420.0
`;

describe('prometheus text', () => {
  it('parses labels with escapes, special values and timestamps', () => {
    const { samples, malformedLines } = parsePrometheusText(
      'a{x="q\\"uote",y="line\\nbreak"} 1.5 1700000000\nb +Inf\nc NaN\nd{bad 1\ne\n',
    );
    expect(samples[0]).toEqual({ name: 'a', labels: { x: 'q"uote', y: 'line\nbreak' }, value: 1.5 });
    expect(samples[1]!.value).toBe(Infinity);
    expect(Number.isNaN(samples[2]!.value)).toBe(true);
    expect(malformedLines).toBe(2);
  });
});

describe('vLLM metrics', () => {
  it('sums data-parallel engines and reads the cache config', () => {
    expect(parseVllmMetrics(page)).toEqual({
      running: 5,
      waiting: 4,
      kvCacheUsage: 0.375,
      prefixCacheQueries: 1000,
      prefixCacheHits: 600,
      promptTokensTotal: undefined,
      requestsCompleted: undefined,
      generationTokensTotal: 420,
      waitingForCapacity: 3,
      // Histograms summed over engines; the older inter-token name is read where the new one is absent.
      histograms: { ...NO_HISTOGRAMS, ttft: { sum: 5, count: 15 }, interToken: { sum: 2, count: 100 } },
      blockSize: 16,
      numGpuBlocks: 4096,
      modelNames: ['llama-8b'],
      lora: undefined,
    });
  });

  it("reads the adapters at work from vLLM's newest lora_requests_info series", () => {
    const gauges = [
      `vllm:num_requests_running{model_name="m"} 3`,
      `vllm:num_requests_waiting{model_name="m"} 1`,
      // Earlier label values stay on the page with the time they were last current.
      `vllm:lora_requests_info{max_lora="4",running_lora_adapters="a",waiting_lora_adapters=""} 1.7000000005e+09`,
      `vllm:lora_requests_info{max_lora="4",running_lora_adapters="a,b",waiting_lora_adapters="c"} 1.7000000012e+09`,
      `vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.7000000001e+09`,
    ].join('\n');
    expect(parseVllmMetrics(gauges).lora).toEqual({ maxLoras: 4, running: ['a', 'b'], waiting: ['c'] });
    expect(parseVllmMetrics('vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n').lora).toBeUndefined();
  });

  it('accepts the pre-0.12 KV name and counters without _total', () => {
    const old = `vllm:num_requests_running{model_name="m"} 1\nvllm:num_requests_waiting{model_name="m"} 0\nvllm:gpu_cache_usage_perc{model_name="m"} 0.9\nvllm:prefix_cache_hits{model_name="m"} 7\n`;
    const load = parseVllmMetrics(old);
    expect(load.kvCacheUsage).toBe(0.9);
    expect(load.prefixCacheHits).toBe(7);
  });

  it('rejects a page that is not vLLM, so a wrong backend never looks idle', () => {
    expect(() => parseVllmMetrics('process_cpu_seconds_total 12\n')).toThrow(MetricsFormatError);
    expect(() => parseVllmMetrics('<html>garbage</html>')).toThrow(MetricsFormatError);
  });
});
