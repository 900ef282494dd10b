import { describe, expect, it } from 'vitest';
import { createKvCache } from './kv-cache.js';

describe('kv cache block pool', () => {
  it('hands out blocks, refuses when short, and counts usage by referenced blocks', () => {
    const kv = createKvCache({ numBlocks: 8, blockSize: 4 });
    const a = kv.allocate(5);
    expect(a).toHaveLength(5);
    expect(kv.usage()).toBeCloseTo(5 / 8);
    expect(kv.allocate(4)).toBeNull();
    expect(kv.numFreeBlocks()).toBe(3);
    kv.free(a ?? []);
    expect(kv.usage()).toBe(0);
  });

  it('keeps freed blocks findable until reallocated, evicting the least recently freed first', () => {
    const kv = createKvCache({ numBlocks: 4, blockSize: 4 });
    const removed: number[] = [];
    kv.events.on('removed', (e) => removed.push(...e.blockHashes));
    const blocks = kv.allocate(4) ?? [];
    blocks.forEach((b, i) => expect(kv.cacheBlock(b, 100 + i)).toBe(true));
    kv.free(blocks.slice(0, 2)); // sequence X: hashes 100, 101
    kv.free(blocks.slice(2)); // sequence Y: hashes 102, 103
    expect(kv.findPrefix([100, 101], 8)).toEqual(blocks.slice(0, 2));
    // Within a sequence the tail is evicted first; X was freed before Y.
    expect(kv.allocate(1)).toEqual([blocks[1]]);
    expect(removed).toEqual([101]);
    expect(kv.findPrefix([100, 101], 8)).toEqual([blocks[0]]);
    expect(kv.isCached(102)).toBe(true);
  });

  it('reusing a cached free block takes it off the free queue and shares referenced ones', () => {
    const kv = createKvCache({ numBlocks: 4, blockSize: 4 });
    const [b0, b1] = kv.allocate(2) ?? [];
    kv.cacheBlock(b0 as number, 7);
    kv.free([b0 as number]);
    // b0 is free but cached: reusing it costs one free block, plus one fresh.
    const got = kv.allocate(1, [b0 as number]);
    expect(got).toHaveLength(1);
    expect(got).not.toContain(b0);
    expect(kv.numFreeBlocks()).toBe(4 - 3);
    // Sharing a block someone holds costs nothing.
    expect(kv.allocate(0, [b0 as number])).toEqual([]);
    kv.free([b0 as number, b0 as number, b1 as number, ...(got ?? [])]);
    expect(kv.numFreeBlocks()).toBe(4);
    expect(() => kv.free([b1 as number])).toThrow(/freed more often/);
  });

  it('resets the prefix cache only when no request holds a block, and reports it', () => {
    const kv = createKvCache({ numBlocks: 4, blockSize: 4 });
    let cleared = 0;
    kv.events.on('cleared', () => cleared++);
    const blocks = kv.allocate(2) ?? [];
    blocks.forEach((b, i) => kv.cacheBlock(b, 10 + i));
    expect(kv.resetPrefixCache()).toBe(false);
    expect(cleared).toBe(0);
    expect(kv.isCached(10)).toBe(true);
    kv.free(blocks);
    expect(kv.resetPrefixCache()).toBe(true);
    expect(cleared).toBe(1);
    expect(kv.numCachedBlocks()).toBe(0);
    expect(kv.findPrefix([10, 11], 8)).toEqual([]);
    // A block whose hash was forgotten can be cached again without a stale removal.
    const removed: number[] = [];
    kv.events.on('removed', (e) => removed.push(...e.blockHashes));
    expect(kv.allocate(4)).toHaveLength(4);
    expect(removed).toEqual([]);
  });
});
