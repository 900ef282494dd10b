import { describe, expect, it } from 'vitest';
import type { BackendView } from '../../fleet/backend.js';
import { createPrefixIndex } from './prefix-index.js';
import { createTokenRatio } from './token-ratio.js';
import { hashText, hashTokens, promptBlocks, renderMessages } from './prompt-blocks.js';

const settings = { blockChars: 8, charsPerToken: 4, blockTokens: 4 };

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

  it('counts only full blocks, in characters of text', () => {
    const p = hashText('x'.repeat(20), settings);
    expect(p.hashes.length).toBe(2);
    expect(p).toMatchObject({ units: 20, unitsPerBlock: 8, exactTokens: false });
  });

  it('renders a conversation as a prefix of its continuation', () => {
    const turn1 = [
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
    ];
    const turn2 = [...turn1, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'More' }];
    expect(renderMessages(turn2).startsWith(renderMessages(turn1))).toBe(true);
    const b1 = promptBlocks({ kind: 'messages', messages: turn1 }, settings).hashes;
    const b2 = promptBlocks({ kind: 'messages', messages: turn2 }, settings).hashes;
    expect(Array.from(b2.slice(0, b1.length))).toEqual(Array.from(b1));
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
  const view = (promptTokensTotal: number | undefined) =>
    ({ id: 'a', metrics: promptTokensTotal === undefined ? undefined : { promptTokensTotal } }) as unknown as BackendView;

  it('learns characters per token from what a backend reports, after enough tokens', () => {
    const ratio = createTokenRatio(4);
    ratio.sent(view(1000), 40_000);
    expect(ratio.charsPerToken(view(11_000))).toBe(4); // 10k tokens: not enough yet
    ratio.sent(view(11_000), 50_000);
    expect(ratio.charsPerToken(view(31_000))).toBe(3); // 90k chars / 30k tokens
    expect(ratio.charsPerToken(view(500))).toBe(4); // counter went back: server restarted
  });
});
