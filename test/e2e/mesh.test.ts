import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickerOnlyEnvoy, startStack, type Stack } from '../helpers/stack.js';

// The router as the endpoint picker of someone else's Envoy: envoy/mesh/envoy-picker.yaml,
// request bodies FULL_DUPLEX_STREAMED, a static override_host pool, no xDS from the router.
let stack: Stack;
let client: OpenAI;

beforeAll(async () => {
  stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }], ...pickerOnlyEnvoy() });
  client = new OpenAI({ baseURL: `${stack.envoy.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
});
afterAll(async () => {
  await stack?.close();
});

const served = (i: number, model: string) => stack.sims[i]!.stats().requestsByModel[model] ?? 0;

describe('endpoint picker inside an existing Envoy (streamed bodies)', () => {
  it('serves chat, streaming and not, through the official client', async () => {
    const chat = await client.chat.completions.create({ model: 'llama-8b', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6 });
    expect(chat.usage?.completion_tokens).toBe(6);
    const stream = await client.chat.completions.create({ model: 'qwen-7b', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, stream: true });
    let chunks = 0;
    for await (const _chunk of stream) chunks++;
    expect(chunks).toBeGreaterThanOrEqual(5);
  });

  it('sends each model only to its servers, with bodies intact', async () => {
    const before = [served(0, 'llama-8b') + served(1, 'llama-8b'), served(2, 'qwen-7b')];
    const long = 'word '.repeat(20_000); // a body Envoy delivers in several chunks
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        client.completions.create({ model: i % 3 === 0 ? 'qwen-7b' : 'llama-8b', prompt: `${long}${i}`, max_tokens: 2 }),
      ),
    );
    expect(served(0, 'llama-8b') + served(1, 'llama-8b') - before[0]!).toBe(8);
    expect(served(2, 'qwen-7b') - before[1]!).toBe(4);
    expect(served(2, 'llama-8b')).toBe(0);
    expect(served(0, 'qwen-7b') + served(1, 'qwen-7b')).toBe(0);
  });

  it('answers unknown models, bad bodies and /v1/models itself', async () => {
    const post = (body: string) =>
      fetch(`${stack.envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const unknown = await post('{"model":"gpt-9","messages":[]}');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    expect((await post('{"model":')).status).toBe(400);
    const models = (await client.models.list()).data.map((m) => m.id).sort();
    expect(models).toEqual(['llama-8b', 'qwen-7b']);
  });

  it('ignores a destination header sent by the client', async () => {
    const qwenServer = `127.0.0.1:${stack.sims[2]!.port}`;
    const before = stack.sims[2]!.stats().requestsTotal;
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${stack.envoy.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-gateway-destination-endpoint': qwenServer },
        body: JSON.stringify({ model: 'llama-8b', prompt: 'x', max_tokens: 1 }),
      });
      expect(res.status).toBe(200);
    }
    expect(stack.sims[2]!.stats().requestsTotal).toBe(before);
  });
});
