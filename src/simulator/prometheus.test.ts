import { describe, expect, it } from 'vitest';
import { build125Buckets, createHistogram, formatValue, sampleLine } from './prometheus.js';

describe('prometheus text', () => {
  it('formats values like prometheus_client', () => {
    expect([formatValue(3), formatValue(0.25), formatValue(Infinity), formatValue(NaN)]).toEqual(['3.0', '0.25', '+Inf', 'NaN']);
    expect(sampleLine('vllm:x_total', [['model_name', 'a"b\\c'], ['engine', '0']], 2)).toBe(
      'vllm:x_total{engine="0",model_name="a\\"b\\\\c"} 2.0',
    );
  });

  it('renders cumulative histogram buckets, count and sum', () => {
    const h = createHistogram('vllm:t_seconds', 'Help.', [0.1, 1]);
    for (const v of [0.05, 0.5, 0.7, 3]) h.observe(v);
    expect(h.render([['engine', '0']])).toEqual([
      '# HELP vllm:t_seconds Help.',
      '# TYPE vllm:t_seconds histogram',
      'vllm:t_seconds_bucket{engine="0",le="0.1"} 1.0',
      'vllm:t_seconds_bucket{engine="0",le="1.0"} 3.0',
      'vllm:t_seconds_bucket{engine="0",le="+Inf"} 4.0',
      'vllm:t_seconds_count{engine="0"} 4.0',
      'vllm:t_seconds_sum{engine="0"} 4.25',
    ]);
  });

  it('builds vLLM 1-2-5 buckets', () => {
    expect(build125Buckets(100)).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });
});
