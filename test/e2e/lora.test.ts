import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

// Three simulated vLLM servers of model `m`, each serving sixteen LoRA adapters with two slots
// in a batch (--max-loras 2), behind a real Envoy and the router, which learns the adapters from
// /v1/models and their activity from vllm:lora_requests_info.
describe('LoRA adapters through Envoy and the router', () => {
  // Enough that the listing Envoy answers itself is over its default 4 KiB bound for such answers.
  const ADAPTERS = 'abcdefghijklmnop'.split('').map((c) => `${c}-adapter-with-a-long-name`);
  let stack: Stack;

  beforeAll(async () => {
    const loraModules = ADAPTERS.map((name) => ({ name, path: `/adapters/${name}` }));
    stack = await startStack({
      backends: [0, 1, 2].map(() => ({ models: ['m'], declareModels: false, loraModules, engine: { maxLoras: 2, loraLoadMs: 20 } })),
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const complete = async (model: string) => {
    const res = await fetch(`${stack.envoy.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: `A question for ${model}`, max_tokens: 4 }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model: string }).model).toBe(model);
  };

  it('lists the model and each adapter once, with its parent', async () => {
    const list = (await fetch(`${stack.envoy.url}/v1/models`).then((r) => r.json())) as { data: Array<{ id: string; parent: string | null }> };
    expect(list.data.map((c) => [c.id, c.parent])).toEqual(expect.arrayContaining([['m', null], ...ADAPTERS.map((a) => [a, 'm'])]));
    expect(list.data.length).toBe(1 + ADAPTERS.length);
    expect(JSON.stringify(list).length).toBeGreaterThan(4096);
  });

  it('keeps each adapter where it is already loaded instead of loading it on every server', async () => {
    const loads = () => stack.sims.reduce((n, s) => n + s.stats().loraLoads, 0);
    const before = loads();
    // Three adapters in turn, two requests at a time: each fits a slot of its own somewhere.
    const three = ADAPTERS.slice(0, 3);
    for (let round = 0; round < 8; round++) {
      for (const adapter of three) await Promise.all([complete(adapter), complete(adapter)]);
    }
    // Once each, plus a reload or two where a scrape came late; spread blindly over three
    // servers with two slots each, 48 requests would load them dozens of times.
    expect(loads() - before).toBeLessThanOrEqual(6);
    const byServer = stack.sims.map((s) => three.filter((a) => (s.stats().requestsByModel[a] ?? 0) > 0).length);
    expect(Math.max(...byServer)).toBeLessThanOrEqual(2);
  });
});
