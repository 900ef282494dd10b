import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { encodeChat, type ChatTurn } from './chat-template.js';
import { CHAT_EOS_TOKEN, planOutput } from './filler.js';
import { decode, encode, SPECIAL_TOKENS, VOCAB_SIZE } from './tokenizer.js';

const ENGLISH =
  'The quick brown fox jumps over the lazy dog. Routing requests to the replica that already holds ' +
  'their prefix saves prefill work, and the savings grow with the length of shared system prompts.\n';

function isPrefix(short: readonly number[], long: readonly number[]): boolean {
  return short.length <= long.length && short.every((t, i) => long[i] === t);
}

describe('tokenizer', () => {
  it('is deterministic, stays inside the vocabulary and round-trips text', () => {
    const ids = encode(ENGLISH);
    expect(encode(ENGLISH)).toEqual(ids);
    expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < VOCAB_SIZE)).toBe(true);
    expect(decode(ids)).toBe(ENGLISH);
    const mixed = 'naïve café — 東京 😀 tabs\tand  double  spaces\r\n\n\n\n\nend ';
    expect(decode(encode(mixed))).toBe(mixed);
  });

  it('splits into word pieces of up to 4 characters, folding a leading space into the piece', () => {
    const pieces = encode('Hello world, foo').map((id) => decode([id]));
    expect(pieces).toEqual(['Hell', 'o', ' worl', 'd', ',', ' foo']);
  });

  it('gives about one token per four characters of English', () => {
    const text = ENGLISH.repeat(20);
    const ratio = text.length / encode(text).length;
    expect(ratio).toBeGreaterThan(2.5);
    expect(ratio).toBeLessThan(5);
  });

  it('recognises special tokens inside text', () => {
    expect(encode('<|im_start|>user\nhi<|im_end|>')).toEqual([
      SPECIAL_TOKENS['<|im_start|>'],
      ...encode('user'),
      ...encode('\n'),
      ...encode('hi'),
      SPECIAL_TOKENS['<|im_end|>'],
    ]);
  });

  it('tokenizes a 100k-token prompt', () => {
    // Its speed is measured by the overhead benchmark, not here.
    const text = ENGLISH.repeat(Math.ceil(450_000 / ENGLISH.length));
    const ids = encode(text);
    expect(ids.length).toBeGreaterThan(100_000);
    expect(ids.every((id) => Number.isInteger(id) && id >= 0)).toBe(true);
  });
});

describe('chat template', () => {
  const conversation: ChatTurn[] = [
    { role: 'system', content: 'You are a terse assistant.' },
    { role: 'user', content: 'What is a KV cache?' },
    { role: 'assistant', content: 'Stored attention keys and values.' },
    { role: 'user', content: 'Why does it help?\n' },
    { role: 'assistant', content: ' It avoids recomputing the prefix.' },
    { role: 'user', content: 'Thanks!' },
  ];

  it('each longer conversation extends the tokens of every shorter prefix ending before an assistant turn', () => {
    const full = encodeChat(conversation);
    for (const cut of [2, 4]) {
      const shorter = encodeChat(conversation.slice(0, cut));
      expect(isPrefix(shorter, full)).toBe(true);
    }
    // Without the generation prompt it is a prefix at every turn boundary.
    for (let cut = 1; cut < conversation.length; cut++) {
      expect(isPrefix(encodeChat(conversation.slice(0, cut), false), full)).toBe(true);
    }
  });

  it('a generated reply fed back as the next assistant turn reproduces the generated tokens', () => {
    const turns: ChatTurn[] = [{ role: 'user', content: 'Tell me something.' }];
    const prompt = encodeChat(turns);
    const plan = planOutput(prompt, 30, CHAT_EOS_TOKEN, 0);
    const reply = plan.texts.join('');
    const next = encodeChat([...turns, { role: 'assistant', content: reply }, { role: 'user', content: 'More.' }]);
    // Prompt, then the reply's tokens including the stop token <|im_end|>.
    expect(next.slice(0, prompt.length + plan.tokenIds.length)).toEqual([...prompt, ...plan.tokenIds]);
  });
});
