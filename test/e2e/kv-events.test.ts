/**
 * Routing on what the servers report they cache: two simulated vLLM servers publishing KV
 * events (vLLM's wire format), the router following them, a real Envoy in front.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../src/launcher/envoy.js';
import { startStack, waitFor, type Stack } from '../helpers/stack.js';

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('routing on KV events', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ backends: [0, 1].map(() => ({ models: ['m'], kvEvents: true })) });
  }, 60_000);
  afterAll(() => stack?.close());

  const complete = (url: string, prompt: number[]) =>
    fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt, max_tokens: 2 }) }).then(async (r) => {
      expect(r.status).toBe(200);
      return r.json();
    });
  const stats = async () => (await fetch(`http://127.0.0.1:${stack.router.adminPort}/stats`).then((r) => r.json())) as { backends: Array<{ id: string; cache: { source: string; events: { batches: number; blocks?: number } | null } }> };

  it('reports each server as known from its own events', async () => {
    await waitFor(async () => (await stats()).backends.every((b) => b.cache.source === 'events'), 10_000, 'both event streams live');
    await fetch(`${stack.sims[0]!.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: range(1, 64), max_tokens: 1 }) });
    // 64 tokens in blocks of 16 (the simulator's), as the server reported storing them.
    await waitFor(async () => (await stats()).backends[0]!.cache.events!.blocks! >= 4, 5000, 'the stored blocks in /stats');
  });

  it("sends a prompt to the server whose cache holds it, though the router never sent it there", async () => {
    const routed = () => stack.router.fleet.backends().map((b) => b.routed);
    for (let p = 0; p < 8; p++) {
      // Cached on one server behind the router's back (a direct client, another replica).
      const holder = p % 2;
      const prompt = range(1000 * (p + 1), 256);
      await complete(stack.sims[holder]!.url, prompt);
      await waitFor(() => {
        const b = stack.router.fleet.backends()[holder]!;
        return (b.cacheEvents?.batches ?? 0) > 0 && stack.router.fleet.backends().every((x) => x.inflight === 0);
      }, 5000, 'the events to arrive');
      // Its blocks reach the router a moment after the answer: wait until the index has them.
      await new Promise((r) => setTimeout(r, 100));
      const before = routed();
      await complete(stack.envoy.url, [...prompt, ...range(7, 20)]);
      const after = routed();
      expect({ prompt: p, to: after.findIndex((n, i) => n > before[i]!) }).toEqual({ prompt: p, to: holder });
    }
  });

  it('knows what every server holds, replayed, and routes on it within 2 s of coming back', async () => {
    // Prompts cached on each server while the router is away.
    await stack.stopRouter();
    const prompts = [0, 1, 2, 3].map((p) => range(20_000 + 1000 * p, 256));
    for (const [p, prompt] of prompts.entries()) await complete(stack.sims[p % 2]!.url, prompt);
    const started = Date.now();
    const router = await stack.restartRouter();
    await waitFor(() => router.fleet.backends().every((b) => b.health === 'healthy' && b.cacheEvents?.state === 'live'), 2_000, 'both servers healthy and their events replayed');
    const routed = () => router.fleet.backends().map((b) => b.routed);
    for (const [p, prompt] of prompts.entries()) {
      const before = routed();
      await complete(stack.envoy.url, [...prompt, 1, 2, 3]);
      expect({ prompt: p, to: routed().findIndex((n, i) => n > before[i]!) }).toEqual({ prompt: p, to: p % 2 });
    }
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('routing chat text on KV events, tokenized as the servers do', () => {
  const TINY = join(REPO, 'test/fixtures/tiny-tokenizer');
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      backends: [0, 1].map(() => ({ models: ['m'], kvEvents: true, tokenizer: TINY })),
      config: { tokenizers: { m: TINY } },
    });
  }, 60_000);
  afterAll(() => stack?.close());

  const chat = (url: string, messages: Array<{ role: string; content: string }>) =>
    fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages, max_tokens: 2 }) }).then(async (r) => {
      expect(r.status).toBe(200);
      return r.json();
    });

  it('sends a conversation to the server that cached its start, though the router never saw it', async () => {
    await waitFor(() => stack.router.fleet.backends().every((b) => b.cacheEvents?.state === 'live'), 10_000, 'both event streams live');
    const routed = () => stack.router.fleet.backends().map((b) => b.routed);
    for (let p = 0; p < 8; p++) {
      const holder = p % 2;
      const system = { role: 'system', content: `Conversation ${p}: ${'you answer questions about the following document, section by section. '.repeat(12)}` };
      await chat(stack.sims[holder]!.url, [system, { role: 'user', content: 'Summarise the first section.' }]);
      await waitFor(() => stack.router.fleet.backends().every((x) => x.inflight === 0), 5000, 'the direct request to finish');
      await new Promise((r) => setTimeout(r, 100));
      const before = routed();
      await chat(stack.envoy.url, [system, { role: 'user', content: 'Now the second one, please.' }]);
      const after = routed();
      expect({ conversation: p, to: after.findIndex((n, i) => n > before[i]!) }).toEqual({ conversation: p, to: holder });
    }
    const metrics = await fetch(`http://127.0.0.1:${stack.router.adminPort}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/vllm_router_prompt_tokenizations_total\{model="m",outcome="tokenized"\} 8/);
    const stats = (await fetch(`http://127.0.0.1:${stack.router.adminPort}/stats`).then((r) => r.json())) as { tokenizers: Record<string, { segmented: boolean; cache: { segments: number } }> };
    // Each conversation's system prompt, encoded and kept for its next request.
    expect(stats.tokenizers['m']).toMatchObject({ dir: TINY, segmented: true, chunked: true });
    expect(stats.tokenizers['m']!.cache.segments).toBeGreaterThanOrEqual(8);
  });
});
