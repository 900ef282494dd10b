import { describe, expect, it } from 'vitest';
import { backendView } from '../../test/helpers/backend-view.js';
import { parseConfig } from '../config/load.js';
import { createSchedulerMemory } from './memory.js';
import { schedulerFromConfig } from './registry.js';

describe('matching prompts against what servers report', () => {
  it("counts an adapter's blocks for requests naming that adapter only", () => {
    const live = { state: 'live' as const, lastSequence: 0, lastBatchAt: 0, batches: 1, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null };
    const fleet = [backendView('a', { cacheEvents: live, models: ['m', 'ad', 'other'] })];
    const tokens = Array.from({ length: 64 }, (_, i) => 10 + i);
    // Each request meets a fresh router whose only knowledge is the server's report.
    const cachedFor = (adapter?: string) => {
      const config = parseConfig({ backends: [] });
      const memory = createSchedulerMemory(config);
      // The server computed these blocks for adapter `ad`.
      memory.preciseIndex.apply('a', 0, { type: 'stored', blockHashes: [1n, 2n, 3n, 4n], parentBlockHash: null, tokenIds: tokens, blockSize: 16, lora: 'ad' });
      const decision = schedulerFromConfig(config, memory).schedule(
        { model: adapter ?? 'm', stream: false, prompt: { kind: 'tokens', tokens: [...tokens, 1, 2] }, ...(adapter ? { adapter } : {}) },
        fleet,
      );
      return decision.kind === 'route' ? decision.why.cachedTokens : -1;
    };
    expect(cachedFor('ad')).toBe(64);
    expect(cachedFor()).toBe(0);
    expect(cachedFor('other')).toBe(0);
  });
});
