import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BackendView } from '../../fleet/backend.js';
import { BlockLru } from './block-lru.js';
import { createPrefixIndex } from './prefix-index.js';
import { createTokenRatio } from './token-ratio.js';
import { chainSeed, hashBytes, hashTokens, promptBlocks } from './prompt-blocks.js';

const settings = { blockBytes: 8, bytesPerToken: 4, blockTokens: 4 };
const hashText = (text: string, s = settings) => hashBytes(Buffer.from(text), s);

describe('prompt blocks', () => {
  it('chains block hashes: equal prefixes share leading hashes, a change breaks all later ones', () => {
    const a = hashText('abcdefgh12345678ABCDEFGH', settings).hashes;
    const b = hashText('abcdefgh12345678XBCDEFGHzzzzzzzz', settings).hashes;
    expect(a.length).toBe(3);
    expect(b.length).toBe(4);
    expect([a[0], a[1]]).toEqual([b[0], b[1]]);
    expect(a[2]).not.toBe(b[2]);
    // The same block content after a different prefix hashes differently.
    const c = hashText('zzzzzzzz12345678', settings).hashes;
    expect(c[1]).not.toBe(a[1]);
  });

  it('counts only full blocks, in bytes of UTF-8 text', () => {
    const p = hashText('x'.repeat(20), settings);
    expect(p.hashes.length).toBe(2);
    expect(p).toMatchObject({ units: 20, unitsPerBlock: 8, exactTokens: false });
    expect(hashText('é'.repeat(10)).units).toBe(20);
  });

  it('sees a change in any byte of a block, in any position of a word', () => {
    const base = Buffer.from('The quick brown fox jumps over the lazy dog, again and again.');
    const hashes = hashBytes(base, settings).hashes;
    for (let i = 0; i < 56; i++) {
      const changed = Buffer.from(base);
      changed[i] = changed[i]! ^ 1;
      const other = hashBytes(changed, settings).hashes;
      const block = Math.floor(i / 8);
      expect(Array.from(other.slice(0, block))).toEqual(Array.from(hashes.slice(0, block)));
      expect(other[block]).not.toBe(hashes[block]);
    }
  });

  it('reads a body that does not start on a word boundary (a view into a larger buffer)', () => {
    const text = 'abcdefgh12345678ABCDEFGH';
    const shifted = Buffer.from(`xyz${text}`).subarray(3);
    expect(Array.from(hashBytes(shifted, settings).hashes)).toEqual(Array.from(hashText(text).hashes));
  });

  it('hashes a conversation so that its continuation shares every full block of it', () => {
    const turn1 = [
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
    ];
    const turn2 = [...turn1, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'More' }];
    // As the request parser hands it over: the `messages` array's own bytes.
    const json = (messages: unknown[]) => Buffer.from(JSON.stringify(messages));
    const b1 = promptBlocks({ kind: 'text', bytes: json(turn1) }, settings).hashes;
    const b2 = promptBlocks({ kind: 'text', bytes: json(turn2) }, settings).hashes;
    expect(b1.length).toBeGreaterThan(5);
    // Every full block but the one holding the closing bracket of the shorter list.
    const shared = Math.floor((json(turn1).length - 1) / 8);
    expect(Array.from(b2.slice(0, shared))).toEqual(Array.from(b1.slice(0, shared)));
  });

  it("keeps each LoRA adapter's blocks apart from the base model's and from each other's", () => {
    const bytes = Buffer.from('The same prompt, sent to the base model and to two adapters of it.');
    const base = Array.from(hashBytes(bytes, settings).hashes);
    const a = Array.from(hashBytes(bytes, settings, chainSeed('sql-lora')).hashes);
    const b = Array.from(hashBytes(bytes, settings, chainSeed('chat-lora')).hashes);
    expect(Array.from(hashBytes(bytes, settings, chainSeed(undefined)).hashes)).toEqual(base);
    for (let i = 0; i < base.length; i++) expect(new Set([base[i], a[i], b[i]]).size).toBe(3);
    const ids = [1, 2, 3, 4, 5, 6, 7, 8];
    expect(hashTokens(ids, settings, chainSeed('sql-lora')).hashes[0]).not.toBe(hashTokens(ids, settings).hashes[0]);
  });

  it('hashes token-id prompts by blocks of ids', () => {
    const a = hashTokens([1, 2, 3, 4, 5, 6, 7, 8, 9], settings);
    const b = hashTokens([1, 2, 3, 4, 5, 6, 7, 0], settings);
    expect(a.hashes.length).toBe(2);
    expect(a.hashes[0]).toBe(b.hashes[0]);
    expect(a.hashes[1]).not.toBe(b.hashes[1]);
    expect(a).toMatchObject({ units: 9, unitsPerBlock: 4, exactTokens: true });
  });
});

describe('prefix index', () => {
  const h = (n: number, offset = 0) => Float64Array.from({ length: n }, (_, i) => i + offset);

  it('finds the longest recorded prefix per backend', () => {
    const index = createPrefixIndex(100);
    index.record('a', h(10));
    expect(index.match('a', h(10))).toBe(10);
    expect(index.match('a', h(20))).toBe(10);
    expect(index.match('a', h(5))).toBe(5);
    expect(index.match('b', h(10))).toBe(0);
    expect(index.match('a', h(10, 1000))).toBe(0);
  });

  it('is bounded per backend and evicts the tails of old prompts first', () => {
    const index = createPrefixIndex(15);
    index.record('a', h(10)); // blocks 0..9
    index.record('a', h(10, 100)); // 10 more: 5 of the first prompt must go, its tail first
    expect(index.size('a')).toBe(15);
    expect(index.match('a', h(10))).toBe(5);
    expect(index.match('a', h(10, 100))).toBe(10);
    index.setCapacity('a', 4);
    expect(index.size('a')).toBe(4);
    expect(index.match('a', h(10, 100))).toBe(4);
  });

  it('holds the head of a prompt longer than the whole cache', () => {
    const index = createPrefixIndex(15);
    index.record('a', h(10, 100));
    index.record('a', h(40));
    expect(index.size('a')).toBe(15);
    expect(index.match('a', h(40))).toBe(15);
    expect(index.match('a', h(10, 100))).toBe(0);
  });

  it('hands its view of a backend to a replica that has none, recency and all', () => {
    const old = createPrefixIndex(15);
    old.record('a', h(10));
    old.record('a', h(10, 100));
    const fresh = createPrefixIndex(15);
    fresh.absorb('a', old.blocks('a'));
    expect(fresh.blocks('a')).toEqual(old.blocks('a'));
    // The same evictions follow from the same next prompt.
    old.record('a', h(5, 200));
    fresh.record('a', h(5, 200));
    expect(fresh.blocks('a')).toEqual(old.blocks('a'));
    // A replica that already follows the backend keeps its own view.
    const running = createPrefixIndex(15);
    running.record('a', h(3, 500));
    running.absorb('a', old.blocks('a'));
    expect(running.match('a', h(3, 500))).toBe(3);
    expect(running.match('a', h(5, 200))).toBe(0);
    // A smaller cache takes the most recent only.
    const small = createPrefixIndex(4);
    small.absorb('a', old.blocks('a'));
    expect(small.blocks('a')).toEqual(old.blocks('a').slice(-4));
  });

  it('forgets backends that left the fleet', () => {
    const index = createPrefixIndex(100);
    index.record('a', h(3));
    index.record('b', h(3));
    index.retain(new Set(['b']));
    expect(index.size('a')).toBe(0);
    expect(index.match('b', h(3))).toBe(3);
  });
});

describe('token ratio', () => {
  /** A backend read with `finished` prompt tokens of finished requests, and `bytes` of prompt text ended by then. */
  const view = (finished: number | undefined, bytes: number, othersShare?: number, counter?: number) =>
    ({
      id: 'a',
      metrics: finished === undefined && counter === undefined ? undefined : { promptTokensTotal: counter, histograms: { promptTokens: finished === undefined ? undefined : { sum: finished, count: 1 } } },
      endedPromptBytesAtRead: bytes,
      recent: { othersShare },
    }) as unknown as BackendView;

  it('learns characters per token from the requests that ended, after enough tokens', () => {
    const ratio = createTokenRatio(4);
    expect(ratio.bytesPerToken(view(1000, 0))).toBe(4);
    expect(ratio.bytesPerToken(view(11_000, 40_000))).toBe(4); // 10k tokens: not enough yet
    expect(ratio.bytesPerToken(view(31_000, 90_000))).toBe(3); // 90k bytes / 30k tokens
    expect(ratio.bytesPerToken(view(500, 90_000))).toBe(4); // the count went back: server restarted
  });

  it('is not misled by prompts still queued: their text and their tokens both count only once they end', () => {
    const ratio = createTokenRatio(4);
    ratio.bytesPerToken(view(0, 0));
    // 30k tokens of finished prompts (90 kB); 300 kB more of long documents sent and still
    // waiting, prefilled or not, appear in neither figure.
    expect(ratio.bytesPerToken(view(30_000, 90_000, undefined, 130_000))).toBe(3);
  });

  it('reads the prompt token counter where the server has no per-request histogram', () => {
    const ratio = createTokenRatio(4);
    ratio.bytesPerToken(view(undefined, 0, undefined, 1000));
    expect(ratio.bytesPerToken(view(undefined, 75_000, undefined, 26_000))).toBe(3);
  });

  it('counts only our share of the server\'s tokens: another replica\'s prompts are in its count, not in our bytes', () => {
    const ratio = createTokenRatio(4);
    ratio.bytesPerToken(view(0, 0));
    expect(ratio.bytesPerToken(view(40_000, 60_000, 0.5))).toBe(3); // half of 40,000 tokens' worth, at 3 bytes a token
    // Share unknown: all of its tokens are taken as ours.
    const fresh = createTokenRatio(4);
    fresh.bytesPerToken(view(0, 0));
    expect(fresh.bytesPerToken(view(40_000, 60_000))).toBe(1.5);
  });
});

describe('block LRU', () => {
  // Keys whose low 32 bits (the bucket) collide at both ends of the table, so probe runs,
  // deletion shifts and wrap-around all get exercised.
  const key = (k: number) => (k % 2 ? k % 5 : 2 ** 32 - 1 - (k % 5)) + Math.floor(k / 5) * 2 ** 33;

  it('behaves like a Map-based LRU under random touches, growth and shrinking (property test)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 300 }).map((k) => ({ touch: key(k) })), fc.integer({ min: 1, max: 200 }).map((n) => ({ resize: n }))), { maxLength: 600 }),
        fc.integer({ min: 1, max: 150 }),
        (ops, capacity) => {
          const lru = new BlockLru(capacity, 2);
          const model = new Map<number, true>();
          let max = capacity;
          const evict = () => {
            for (const k of model.keys()) {
              if (model.size <= max) break;
              model.delete(k);
            }
          };
          for (const op of ops) {
            if ('touch' in op) {
              model.delete(op.touch);
              model.set(op.touch, true);
              lru.touch(op.touch);
            } else {
              max = op.resize;
              lru.resize(op.resize);
            }
            evict();
            expect(lru.size).toBe(model.size);
          }
          for (let k = 0; k <= 300; k++) expect(lru.has(key(k))).toBe(model.has(key(k)));
        },
      ),
      { numRuns: 300 },
    );
  });
});
