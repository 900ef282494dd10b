import { describe, expect, it } from 'vitest';
import { createServiceRateLearner, emptyServiceRates } from './service-rates.js';
import { parseVllmMetrics, prefillSteps, type VllmLoad } from './vllm-metrics.js';

const none = { sumS: 0, count: 0 };

describe('requests prefilled together', () => {
  it('takes what a token adds to a step from requests prefilled together, each living the whole step', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const step = 0.006;
    const perToken = 0.00005;
    // Each interval: 30 decode steps of 8 sequences, and 4 requests of 300 uncached tokens sent
    // together and prefilled in one step of 1,200 tokens (the buckets show one step above 8).
    const bucketsAt = (i: number) => [{ le: 8, steps: 30 * i }, { le: 16, steps: 30 * i }, { le: 2048, steps: 31 * i }, { le: Infinity, steps: 31 * i }];
    const page = (i: number): VllmLoad => ({
      running: 8, waiting: 0, kvCacheUsage: 0, prefixCacheQueries: undefined, prefixCacheHits: undefined, promptTokensTotal: undefined,
      requestsCompleted: undefined, generationTokensTotal: undefined, waitingForCapacity: 0, blockSize: 16, numGpuBlocks: 1000, modelNames: ['m'], lora: undefined,
      stepTokenBuckets: bucketsAt(i),
      histograms: {
        ttft: undefined, queue: undefined, inference: undefined, promptTokens: undefined, generationTokens: undefined, iterationTokens: undefined,
        interToken: { sum: 240 * i * step, count: 240 * i },
        prefill: { sum: 4 * i * (step + 1200 * perToken), count: 4 * i },
        prefillComputedTokens: { sum: 1200 * i, count: 4 * i },
      },
    });
    for (let i = 0; i <= 20; i++) learner.observe(rates, page(i), none, i * 200);
    // Each lives 1,200 tokens' prefill for its 300: four times what a token adds to a step.
    expect(rates.contendedPrefillPerTokenS! / (4 * perToken)).toBeCloseTo(1, 1);
    expect(rates.prefillPerTokenS! / perToken).toBeGreaterThan(0.9);
    expect(rates.prefillPerTokenS! / perToken).toBeLessThan(1.15);
  });

  it('counts the steps that prefilled: those above the bucket that holds the largest batch', () => {
    const page = (decode: number, prefill: number, engines = 1) =>
      parseVllmMetrics(
        ['vllm:num_requests_running 0', 'vllm:num_requests_waiting 0']
          .concat(Array.from({ length: engines }, (_, e) => [
            `vllm:iteration_tokens_total_bucket{engine="${e}",le="8.0"} ${decode}`,
            `vllm:iteration_tokens_total_bucket{engine="${e}",le="16.0"} ${decode}`,
            `vllm:iteration_tokens_total_bucket{engine="${e}",le="2048.0"} ${decode + prefill}`,
            `vllm:iteration_tokens_total_bucket{engine="${e}",le="+Inf"} ${decode + prefill}`,
          ]).flat())
          .join('\n'),
      );
    expect(prefillSteps(page(130, 7), page(100, 5), 6)).toBe(2);
    // With 12 running, a decode step has up to 12 tokens: the bucket of 16 holds them.
    expect(prefillSteps(page(130, 7), page(100, 5), 12)).toBe(2);
    // Data-parallel ranks are summed; a server without the buckets says nothing.
    expect(prefillSteps(page(130, 7, 2), page(100, 5, 2), 6)).toBe(4);
    expect(prefillSteps(page(130, 7), { ...page(100, 5), stepTokenBuckets: undefined }, 6)).toBeUndefined();
    // A counter that went back (a restart) gives nothing.
    expect(prefillSteps(page(10, 1), page(100, 5), 6)).toBeUndefined();
  });
});
