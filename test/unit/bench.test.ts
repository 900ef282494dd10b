import { describe, expect, it } from 'vitest';
import { groupedBarsSvg } from '../../bench/chart.js';
import { upperBoundHitRate } from '../../bench/upper-bound.js';
import { allWorkloads, cachePressure, multiAdapter, multiTurnChat, randomPrompts, sharedSystemPrompts, type BenchRequest } from '../../bench/workloads.js';

describe('routing benchmark workloads', () => {
  it('are deterministic for a seed', () => {
    const a = allWorkloads(7, 'full').map((w) => w.sessions.slice(0, 3).map((s) => JSON.stringify(s.turn(0, []))));
    const b = allWorkloads(7, 'full').map((w) => w.sessions.slice(0, 3).map((s) => JSON.stringify(s.turn(0, []))));
    const c = allWorkloads(8, 'full').map((w) => w.sessions.slice(0, 3).map((s) => JSON.stringify(s.turn(0, []))));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(allWorkloads(7, 'full').map((w) => w.name)).toEqual([
      'multi-turn-chat',
      'shared-system-prompts',
      'long-document-qa',
      'random-prompts',
      'mixed-two-models',
      'cache-pressure',
      'multi-adapter',
    ]);
  });

  it('ask for many LoRA adapters, a few of them far more often than the rest', () => {
    const workload = multiAdapter(3, 'full');
    expect(workload.lora).toEqual({ adapters: Array.from({ length: 16 }, (_, i) => `llama-8b-lora-${i}`), maxLoras: 4 });
    const counts = new Map<string, number>();
    for (const s of workload.sessions) counts.set(s.turn(0, []).model, (counts.get(s.turn(0, []).model) ?? 0) + 1);
    expect(counts.size).toBeGreaterThan(12);
    expect(counts.get('llama-8b-lora-0')!).toBeGreaterThan(3 * (counts.get('llama-8b-lora-15') ?? 0));
  });

  it('send a share of the cache-pressure traffic straight to the servers, spread over them', () => {
    const sessions = cachePressure(5, 'full').sessions;
    const direct = sessions.filter((s) => s.direct !== undefined);
    expect(direct.length / sessions.length).toBeGreaterThan(0.3);
    expect(direct.length / sessions.length).toBeLessThan(0.5);
    expect(new Set(direct.map((s) => s.direct! % 4)).size).toBe(4);
  });

  it('size text in the tokens of the run: as many characters a token as the tokenizer takes', () => {
    const [four, two] = [4, 2].map((chars) => randomPrompts(9, 'quick', undefined, chars).sessions[0]!.turn(0, []).messages[0]!.content.length);
    expect(four! / two!).toBeCloseTo(2, 1);
  });

  it('grow chat history turn by turn', () => {
    const session = multiTurnChat(1, 'quick').sessions[0]!;
    const t0 = session.turn(0, []);
    const t2 = session.turn(2, ['first reply', 'second reply']);
    expect(t2.messages.slice(0, t0.messages.length - 1)).toEqual(t0.messages.slice(0, -1));
    expect(t2.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user']);
  });
});

describe('upper bound of the hit rate', () => {
  it('counts repeats of a prompt as hits and unrelated prompts as misses', () => {
    const shared = sharedSystemPrompts(3, 'quick').sessions.slice(0, 40).map((s) => ({ request: s.turn(0, []), reply: '' }));
    expect(upperBoundHitRate(shared, 8192, 16)).toBeGreaterThan(0.6);
    const unrelated: Array<{ request: BenchRequest; reply: string }> = Array.from({ length: 20 }, (_, i) => ({
      request: { model: 'm', maxTokens: 4, messages: [{ role: 'user', content: `${i} `.repeat(400 + i) }] },
      reply: '',
    }));
    expect(upperBoundHitRate(unrelated, 8192, 16)).toBeLessThan(0.05);
  });
});

describe('benchmark chart', () => {
  it('draws one bar per workload and strategy, and the bound marks', () => {
    const svg = groupedBarsSvg(['w1', 'w2'], ['a', 'b', 'c'], [{ title: 'T', unit: 'ms', values: [[1, 2, 3], [4, 5, 6]], marks: [2, undefined] }]);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(6); // bars carry a tooltip; legend swatches do not
    expect(svg.match(/stroke-dasharray/g)!.length).toBe(2); // one mark + the legend sample
  });
});
