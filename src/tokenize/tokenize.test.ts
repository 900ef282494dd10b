import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPO } from '../launcher/envoy.js';
import { loadModelTokenizer, TokenizerLoadError } from './model-tokenizer.js';
import { MAX_TOKENIZED_BODY_BYTES, promptTokens } from './prompt-tokens.js';
import { createSegmentCache } from './segment-cache.js';
import { chunkEnd, chunkSize } from './text-chunks.js';
import { loadTokenizerSet } from './tokenizer-set.js';

const TINY = join(REPO, 'test/fixtures/tiny-tokenizer');
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

/** A copy of the tiny tokenizer with its files changed by `edit`. */
function variant(edit: (json: Record<string, unknown>, config: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'tokenizer-'));
  const json = JSON.parse(readFileSync(join(TINY, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const config = JSON.parse(readFileSync(join(TINY, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  edit(json, config);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

describe('model tokenizer', () => {
  const tokenizer = loadModelTokenizer(TINY, 1 << 20);
  const reference = new Tokenizer(JSON.parse(readFileSync(join(TINY, 'tokenizer.json'), 'utf8')), {});
  const stripping = loadModelTokenizer(variant((json) => ((json['added_tokens'] as { lstrip: boolean }[])[1]!.lstrip = true)), 1 << 20);

  it('encodes between added tokens piecewise, with the ids of encoding the whole text', () => {
    expect(tokenizer.segmented).toBe(true);
    expect(stripping.segmented).toBe(false);
    const piece = fc.stringMatching(/^[a-z .,\n?!é日🎉']{0,60}$/);
    fc.assert(
      fc.property(fc.array(fc.tuple(piece, fc.constantFrom('<s>', '</s>', '<pad>', '')), { maxLength: 6 }), (parts) => {
        const text = parts.map(([t, s]) => t + s).join('');
        expect(tokenizer.encode(text, false)).toEqual(reference.encode(text, { add_special_tokens: false }).ids);
      }),
      { numRuns: 200 },
    );
  });

  it('cuts long text between words into pieces, with the ids of encoding the whole text', () => {
    expect(tokenizer.chunked).toBe(true);
    const word = fc.constantFrom('the', 'cache', ' émigré', 'café,', '日本語', '🎉', '123', '4567.', '"quoted"', '(x)', '\n\n', '  ', "it's", '\t', 'a?b=c', '<s>', '</s>');
    fc.assert(
      fc.property(fc.array(word, { minLength: 300, maxLength: 900 }), (words) => {
        const text = words.join(' ');
        expect(tokenizer.encode(text, false)).toEqual(reference.encode(text, { add_special_tokens: false }).ids);
      }),
      { numRuns: 30 },
    );
  });

  it('reads a prompt only as far as asked, each new piece once', () => {
    const shared = 'Every answer cites the manual, chapter and verse, in plain words for plain people. '.repeat(40);
    const whole = tokenizer.encode(`<s>${shared} first question</s>`, false);
    const reader = tokenizer.read(`<s>${shared} second question, a new one</s>`, false);
    // The shared text is cached in pieces: the first read takes them all and the new last piece, and stops there.
    expect(reader.readMore()).toBe(true);
    expect(reader.done).toBe(false);
    expect(Array.from(reader.ids.slice(0, whole.length - 10))).toEqual(whole.slice(0, whole.length - 10));
    const before = reader.ids.length;
    expect(reader.readMore()).toBe(true);
    expect([reader.done, reader.ids.length]).toEqual([true, before + 1]);
    const fresh = tokenizer.read(`<s>${'Nobody asked this before, so every piece of it is new text. '.repeat(60)}</s>`, false);
    fresh.readMore();
    expect(fresh.done).toBe(false);
    const estimate = fresh.estimatedLength();
    const all = fresh.readAll();
    expect(fresh.readMore()).toBe(false);
    expect(Math.abs(estimate - all.length) / all.length).toBeLessThan(0.1);
    expect(fresh.estimatedLength()).toBe(all.length);
    expect(Array.from(all)).toEqual(tokenizer.encode(`<s>${'Nobody asked this before, so every piece of it is new text. '.repeat(60)}</s>`, false));
  });

  it('keeps short segments too, within a budget that counts what each entry costs', () => {
    let calls = 0;
    const cache = createSegmentCache((text) => (calls++, Uint32Array.from(text, (c) => c.charCodeAt(0))), 1_000);
    for (let i = 0; i < 1_000; i++) cache.encode(`s${i}`);
    const { segments, chars } = cache.stats();
    // 2-4 characters each, and the entry's own cost: some 30 kept, not a thousand.
    expect(chars).toBeLessThanOrEqual(1_000);
    expect(segments).toBeGreaterThan(20);
    expect(segments).toBeLessThan(35);
    // The most recent are the ones kept.
    calls = 0;
    expect(Array.from(cache.encode('s999'))).toEqual([115, 57, 57, 57]);
    cache.encode('s0');
    expect(calls).toBe(1);
  });

  it('encodes a repeated segment once', () => {
    const system = 'You are a helpful assistant who answers every question about the world. '.repeat(20);
    const before = tokenizer.cacheStats();
    const first = tokenizer.encode(`<s>${system}</s>hello`, false);
    const second = tokenizer.encode(`<s>${system}</s>goodbye`, false);
    const after = tokenizer.cacheStats();
    // Its pieces, cut between words, once each, and each short tail once (a call of the tokenizer
    // costs more than a lookup, however short its text).
    let pieces = 0;
    for (let at = 0; at < system.length; at = chunkEnd(system, at, chunkSize(pieces))) pieces++;
    expect(pieces).toBeGreaterThan(1);
    expect(after.misses - before.misses).toBe(pieces + 2);
    expect(after.hits - before.hits).toBe(pieces);
    tokenizer.encode(`<s>${system}</s>hello`, false);
    expect(tokenizer.cacheStats().hits - after.hits).toBe(pieces + 1);
    const end = first.indexOf(1) + 1;
    expect(end).toBeGreaterThan(100);
    expect(second.slice(0, end)).toEqual(first.slice(0, end));
  });

  it('renders the chat template with the special tokens of tokenizer_config.json', () => {
    const text = tokenizer.renderChat(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      { addGenerationPrompt: true, continueFinalMessage: false },
    );
    expect(text).toBe('<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n');
    const continued = tokenizer.renderChat(
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello, I' },
      ],
      { addGenerationPrompt: true, continueFinalMessage: true },
    );
    expect(continued).toBe('<s><|user|>\nHi</s>\n<|assistant|>\nHello, I');
  });

  it('adds what the post-processor adds when special tokens are asked for', () => {
    const withBos = loadModelTokenizer(
      variant((json) => {
        json['post_processor'] = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } } };
      }),
      1 << 20,
    );
    const plain = withBos.encode('Hello world', false);
    expect(withBos.encode('Hello world', true)).toEqual([0, ...plain]);
    expect(tokenizer.encode('Hello world', true)).toEqual(tokenizer.encode('Hello world', false));
  });

  it('names the directory and the file when it cannot load', () => {
    expect(() => loadModelTokenizer('/nonexistent/model', 1)).toThrow(new TokenizerLoadError('/nonexistent/model', 'tokenizer.json not found'));
    const broken = variant((_json, config) => (config['chat_template'] = '{% for m in messages %}'));
    expect(() => loadModelTokenizer(broken, 1)).toThrow(/chat template chat_template: /);
  });

  it('reuses directories a previous set loaded, caches and all', () => {
    const first = loadTokenizerSet({ tiny: TINY });
    const second = loadTokenizerSet({ tiny: TINY, 'tiny-alias': TINY }, first);
    expect(second.forModel('tiny')).toBe(first.forModel('tiny'));
    expect(second.forModel('tiny-alias')).toBe(first.forModel('tiny'));
    expect(second.forModel('other')).toBeUndefined();
  });
});

describe('prompt tokens', () => {
  const tokenizer = loadModelTokenizer(TINY, 1 << 20);
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: 'there' }] },
  ];

  it('renders chat without special tokens and completions with them, as vLLM does by default', () => {
    const chat = promptTokens(tokenizer, '/v1/chat/completions', body({ model: 'm', messages }));
    const ids = (r: ReturnType<typeof promptTokens>) => (r.ok ? Array.from(r.reader.readAll()) : r.why);
    expect(ids(chat)).toEqual(tokenizer.encode('<s><|system|>\nBe brief.</s>\n<|user|>\nHi\nthere</s>\n<|assistant|>\n', false));
    const completion = promptTokens(tokenizer, '/v1/completions', body({ model: 'm', prompt: ['Once upon', 'x'] }));
    expect(ids(completion)).toEqual(tokenizer.encode('Once upon', true));
    const noGeneration = promptTokens(tokenizer, '/v1/chat/completions', body({ model: 'm', messages, add_generation_prompt: false }));
    expect(ids(noGeneration).length).toBeLessThan(ids(chat).length);
  });

  it('says why it leaves a prompt to text matching', () => {
    const why = (path: string, value: unknown) => {
      const r = promptTokens(tokenizer, path, body(value));
      return r.ok ? 'ok' : r.why;
    };
    expect(why('/v1/embeddings', { model: 'm', input: 'x' })).toBe('path');
    expect(why('/v1/chat/completions', { model: 'm', messages, chat_template: '{{ 1 }}' })).toBe('request-template');
    expect(why('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })).toBe('non-text-content');
    expect(why('/v1/completions', { model: 'm', prompt: [1, 2, 3] })).toBe('not-text');
    expect(why('/v1/chat/completions', { model: 'm', messages, cache_salt: 'tenant-a' })).toBe('cache-salt');
    expect(why('/v1/completions', { model: 'm', prompt: 'x'.repeat(MAX_TOKENIZED_BODY_BYTES) })).toBe('too-long');
    const raising = loadModelTokenizer(variant((_json, config) => (config['chat_template'] = "{{ raise_exception('roles must alternate') }}")), 1);
    const r = promptTokens(raising, '/v1/chat/completions', body({ model: 'm', messages }));
    expect(r).toEqual({ ok: false, why: 'template-error: roles must alternate' });
  });
});
