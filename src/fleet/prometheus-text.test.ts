import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from './prometheus-text.js';

describe('Prometheus text parsing', () => {
  const page = [
    '# HELP a_total A counter.',
    '# TYPE a_total counter',
    'a_total{x="1"} 3',
    '  a_total{x="2",y="q\\"uote"} 4\r',
    'b_bucket{le="+Inf"} 9',
    'b_count 9',
    'a_total',
    'a_total{x="3"} not-a-number',
    '\ta_total 5',
    '',
  ].join('\n');

  it('keeps only the wanted families, with the same samples and errors as reading them all', () => {
    const all = parsePrometheusText(page);
    const wanted = parsePrometheusText(page, (name) => name === 'a_total');
    expect(wanted.samples).toEqual(all.samples.filter((s) => s.name === 'a_total'));
    expect(wanted.samples.map((s) => s.value)).toEqual([3, 4, 5]);
    expect(wanted.samples[1]!.labels).toEqual({ x: '2', y: 'q"uote' });
    expect(wanted.malformedLines).toBe(2);
    expect(all.samples.map((s) => s.name)).toEqual(['a_total', 'a_total', 'b_bucket', 'b_count', 'a_total']);
  });
});
