import { describe, expect, it } from 'vitest';
import { createPreciseIndex, tokenBlockKeys } from './precise-index.js';

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const stored = (hashes: bigint[], parent: bigint | null, tokens: number[], lora: string | null = null) =>
  ({ type: 'stored', blockHashes: hashes, parentBlockHash: parent, tokenIds: tokens, blockSize: 4, lora }) as const;

describe('precise prefix index', () => {
  it('matches a prompt against the blocks a backend reported, chained through parents across events', () => {
    const index = createPreciseIndex();
    index.apply('a', 0, stored([101n, 102n], null, range(0, 8)));
    index.apply('a', 0, stored([(1n << 64n) - 1n], 102n, range(8, 4)));
    const prompt = tokenBlockKeys(range(0, 14), 4); // 3 full blocks, 2 tokens left over
    expect(prompt).toHaveLength(3);
    expect(index.match('a', prompt)).toBe(3);
    expect(index.match('b', prompt)).toBe(0);
    expect(index.blockSize('a')).toBe(4);
    // Same tokens after a different first block: a different prefix, no match.
    expect(index.match('a', tokenBlockKeys([99, ...range(1, 11)], 4))).toBe(0);
  });

  it('applies removals by engine hash and stops the match at the first missing block', () => {
    const index = createPreciseIndex();
    index.apply('a', 0, stored([1n, 2n, 3n], null, range(0, 12)));
    index.apply('a', 0, { type: 'removed', blockHashes: [2n, 77n] });
    const keys = tokenBlockKeys(range(0, 12), 4);
    expect(index.match('a', keys)).toBe(1);
    expect(index.stats('a').blocks).toBe(2);
  });

  it('keeps an adapter\'s blocks apart from the base model\'s', () => {
    const index = createPreciseIndex();
    index.apply('a', 0, stored([1n], null, range(0, 4), 'sql'));
    expect(index.match('a', tokenBlockKeys(range(0, 4), 4))).toBe(0);
    expect(index.match('a', tokenBlockKeys(range(0, 4), 4, 'sql'))).toBe(1);
  });

  it('clears one data-parallel rank without forgetting a block another rank still holds', () => {
    const index = createPreciseIndex();
    index.apply('a', 0, stored([1n], null, range(0, 4)));
    index.apply('a', 1, stored([9n], null, range(0, 4)));
    index.apply('a', 1, stored([10n], 9n, range(4, 4)));
    const keys = tokenBlockKeys(range(0, 8), 4);
    expect(index.match('a', keys)).toBe(2);
    index.apply('a', 1, { type: 'cleared' });
    expect(index.match('a', keys)).toBe(1);
    index.clear('a');
    expect(index.match('a', keys)).toBe(0);
  });

  it('does not index a block whose parent it never saw, and counts it', () => {
    const index = createPreciseIndex();
    index.apply('a', 0, stored([5n], 4n, range(4, 4)));
    expect(index.stats('a')).toEqual({ blocks: 0, orphans: 1 });
  });

  it('re-keys an engine hash that is stored again with other tokens', () => {
    const index = createPreciseIndex();
    index.apply('a', 0, stored([1n], null, range(0, 4)));
    index.apply('a', 0, stored([1n], null, range(50, 4)));
    expect(index.match('a', tokenBlockKeys(range(0, 4), 4))).toBe(0);
    expect(index.match('a', tokenBlockKeys(range(50, 4), 4))).toBe(1);
    expect(index.stats('a').blocks).toBe(1);
  });
});
