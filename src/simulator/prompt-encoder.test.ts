import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../launcher/envoy.js';
import { loadModelTokenizer } from '../tokenize/model-tokenizer.js';
import { promptTokens } from '../tokenize/prompt-tokens.js';
import { startSimulator, type SimulatorHandle } from './server.js';

const TINY = join(REPO, 'test/fixtures/tiny-tokenizer');

describe('simulator with a model directory tokenizer', () => {
  let sim: SimulatorHandle;
  beforeAll(async () => {
    sim = await startSimulator({ models: ['m'], tokenizer: TINY });
  });
  afterAll(() => sim?.close());

  const tokenize = (body: unknown) =>
    fetch(`${sim.url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<{ tokens: number[] }>);

  it("computes the ids the router computes for the same request", async () => {
    const router = loadModelTokenizer(TINY, 1 << 20);
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'What is the capital of France?' },
    ];
    const chat = promptTokens(router, '/v1/chat/completions', Buffer.from(JSON.stringify({ model: 'm', messages })));
    expect(chat.ok).toBe(true);
    expect((await tokenize({ model: 'm', messages })).tokens).toEqual(chat.ok ? Array.from(chat.reader.readAll()) : []);
    const completion = promptTokens(router, '/v1/completions', Buffer.from(JSON.stringify({ model: 'm', prompt: 'Once upon a time' })));
    expect((await tokenize({ model: 'm', prompt: 'Once upon a time' })).tokens).toEqual(completion.ok ? Array.from(completion.reader.readAll()) : []);
  });

  it('refuses a directory without a tokenizer, naming the file', async () => {
    await expect(startSimulator({ models: ['m'], tokenizer: '/nonexistent' })).rejects.toThrow('tokenizer in /nonexistent: tokenizer.json not found');
  });
});
