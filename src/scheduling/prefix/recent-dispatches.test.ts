import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.js';
import { backendView } from '../../../test/helpers/backend-view.js';
import { createSchedulerMemory } from '../memory.js';
import { createScheduler } from '../scheduler.js';
import { createMaxScorePicker } from '../pickers/max-score.js';
import { createRecentDispatches } from './recent-dispatches.js';

const blocks = (...hashes: number[]) => Float64Array.from(hashes);

describe('recent dispatches', () => {
  it('matches the leading blocks a pending prompt shares, until it is due', () => {
    const recent = createRecentDispatches();
    recent.record('a', blocks(1, 2, 3, 4), 0, 1000);
    recent.record('a', blocks(1, 2, 9), 0, 3000);
    expect(recent.match('a', blocks(1, 2, 3, 5), 500)).toBe(3);
    expect(recent.match('a', blocks(7, 2, 3), 500)).toBe(0);
    expect(recent.match('b', blocks(1, 2, 3), 500)).toBe(0);
    // The first is due: its blocks are in the events by now, if it was served.
    expect(recent.match('a', blocks(1, 2, 3, 5), 1500)).toBe(2);
    recent.retain(new Set(['b']));
    expect(recent.match('a', blocks(1, 2), 1500)).toBe(0);
  });

  it('stays bounded, dropping what is due first and then the oldest recorded', () => {
    const recent = createRecentDispatches();
    // 80 prompts of 1,000 blocks each, 80,000 blocks pending at once: past the bound.
    for (let p = 0; p < 80; p++) recent.record('a', Float64Array.from({ length: 1000 }, (_, i) => p * 1e6 + i + 1), 0, 10_000);
    const newest = Float64Array.from({ length: 1000 }, (_, i) => 79 * 1e6 + i + 1);
    expect(recent.match('a', newest, 100)).toBe(1000);
    expect(recent.match('a', Float64Array.from([1, 2, 3]), 100)).toBe(0);
    // What is due goes first: a prompt recorded later still matches while an earlier one expired.
    recent.record('b', blocks(1, 2), 0, 50);
    recent.record('b', blocks(1, 2, 3), 0, 500);
    expect(recent.match('b', blocks(1, 2, 3), 100)).toBe(3);
    expect(recent.match('b', blocks(1, 2, 3), 600)).toBe(0);
  });

  it("counts a prompt just sent to a server as cached there, while that server's events cannot show it yet", () => {
    const config = parseConfig({ backends: [] });
    const memory = createSchedulerMemory(config);
    let now = 1_000_000;
    const scheduler = createScheduler({
      filters: [],
      scorers: [],
      picker: createMaxScorePicker(() => 0),
      fallbacks: 1,
      prefixIndex: memory.prefixIndex,
      preciseIndex: memory.preciseIndex,
      recentDispatches: memory.recentDispatches,
      tokenRatio: memory.tokenRatio,
      meanUncachedPrefill: memory.meanUncachedPrefill,
      blocks: config.scheduler.prefix,
      now: () => now,
    });
    const live = { state: 'live' as const, lastSequence: 0, lastBatchAt: 0, batches: 1, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null };
    const fleet = ['a', 'b'].map((id) => backendView(id, { cacheEvents: live }));
    // Each server has reported one unrelated block: their events are followed and complete.
    for (const b of fleet) memory.preciseIndex.apply(b.id, 0, { type: 'stored', blockHashes: [1n], parentBlockHash: null, tokenIds: [9, 9, 9, 9], blockSize: 4, lora: null });
    const prompt = { kind: 'tokens' as const, tokens: Array.from({ length: 512 }, (_, i) => 100 + i) };
    const first = scheduler.schedule({ model: 'm', stream: false, prompt }, fleet);
    if (first.kind !== 'route') throw new Error('not routed');
    expect(first.why.cachedTokens).toBe(0);
    const second = scheduler.schedule({ model: 'm', stream: false, prompt }, fleet);
    expect(second.kind === 'route' && second.primary.id).toBe(first.primary.id);
    expect(second.kind === 'route' && second.why.cachedTokens).toBe(512);
    // Long past its first token and still not in the events: not held after all.
    now += 60_000;
    const third = scheduler.schedule({ model: 'm', stream: false, prompt }, fleet);
    expect(third.kind === 'route' && third.why.cachedTokens).toBe(0);
  });
});
