import { describe, expect, it } from 'vitest';
import { backendView } from '../../test/helpers/backend-view.js';
import { parseConfig } from '../config/load.js';
import { createSchedulerMemory } from './memory.js';
import { schedulerFromConfig } from './registry.js';
import type { PromptTokenReader } from './types.js';

/** A prompt's ids handed out `step` at a time, as a tokenizer reading piece by piece would. */
function steppedReader(all: readonly number[], step: number): PromptTokenReader & { reads: number } {
  let read = 0;
  return {
    reads: 0,
    get ids() {
      return all.slice(0, read);
    },
    get done() {
      return read >= all.length;
    },
    readMore() {
      if (read >= all.length) return false;
      this.reads++;
      read = Math.min(all.length, read + step);
      return true;
    },
    estimatedLength: () => all.length,
  };
}

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

  it('reads a prompt being tokenized only as far as a server holds it, and scores it as if read whole', () => {
    const live = { state: 'live' as const, lastSequence: 0, lastBatchAt: 0, batches: 1, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null };
    // One server, so the figures read are its own whatever the placement.
    const fleet = [backendView('a', { cacheEvents: live })];
    const tokens = Array.from({ length: 2000 }, (_, i) => 10 + (i % 997));
    const route = (held: number, prompt: 'whole' | 'reader') => {
      const config = parseConfig({ backends: [] });
      const memory = createSchedulerMemory(config);
      const blocks = held / 16;
      if (blocks > 0) {
        const hashes = Array.from({ length: blocks }, (_, i) => BigInt(i + 1));
        memory.preciseIndex.apply('a', 0, { type: 'stored', blockHashes: hashes, parentBlockHash: null, tokenIds: tokens.slice(0, held), blockSize: 16, lora: null });
      }
      const reader = steppedReader(tokens, 100);
      const decision = schedulerFromConfig(config, memory).schedule(
        { model: 'm', stream: false, prompt: prompt === 'whole' ? { kind: 'tokens', tokens } : { kind: 'tokenizing', reader, bytes: Buffer.from(JSON.stringify(tokens)) } },
        fleet,
      );
      if (decision.kind !== 'route') throw new Error(decision.code);
      return { read: reader.ids.length, cached: decision.why.cachedTokens, prompt: decision.why.promptTokens, backend: decision.primary.id };
    };
    // Nobody holds it: its first piece and no further (its placement is read off its text).
    expect(route(0, 'reader')).toMatchObject({ read: 100, cached: 0, prompt: 2000 });
    // `a` holds 400 tokens: read on past its hold, then stop; the scores are those of the whole prompt.
    const partly = route(400, 'reader');
    expect(partly).toMatchObject({ read: 500, cached: 400, prompt: 2000, backend: 'a' });
    expect(partly).toMatchObject({ ...route(400, 'whole'), read: 500 });
    expect(route(2000, 'reader')).toMatchObject({ read: 2000, cached: 2000, backend: 'a' });
  });

  it('remembers the whole of a prompt it sent, though it read only its opening, until the events report it', () => {
    const live = { state: 'live' as const, lastSequence: 0, lastBatchAt: 0, batches: 1, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null };
    const fleet = [backendView('a', { cacheEvents: live }), backendView('b', { cacheEvents: live })];
    const tokens = Array.from({ length: 2000 }, (_, i) => 10 + (i % 997));
    const config = parseConfig({ backends: [] });
    const memory = createSchedulerMemory(config);
    const scheduler = schedulerFromConfig(config, memory);
    const send = () => {
      const reader = steppedReader(tokens, 100);
      const decision = scheduler.schedule({ model: 'm', stream: false, prompt: { kind: 'tokenizing', reader, bytes: Buffer.from(JSON.stringify(tokens)) } }, fleet);
      if (decision.kind !== 'route') throw new Error(decision.code);
      return { read: reader.ids.length, cached: decision.why.cachedTokens, backend: decision.primary.id };
    };
    // Nobody holds it: read no further than its first piece.
    const first = send();
    expect(first).toMatchObject({ read: 100, cached: 0 });
    // Sent again before its server reports a block: the server will hold all of it by the time
    // it gets there (the first is prefilling it), not only the part the router happened to read.
    const second = send();
    expect(second.backend).toBe(first.backend);
    expect(second.cached).toBeGreaterThan(1900);
  });
});
