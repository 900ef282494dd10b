import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVllmMetrics, READ_SERIES } from '../../src/fleet/vllm-metrics.js';
import { RECENT_ADAPTER_MS } from '../../src/scheduling/adapters.js';
import { loadModelTokenizer } from '../../src/tokenize/model-tokenizer.js';
import { promptTokens } from '../../src/tokenize/prompt-tokens.js';
import { startStack, waitFor, type Stack } from '../helpers/stack.js';
import { TINY_LORA, TINY_MODEL, startVllmServers, vllmInstalled, type VllmServer } from '../helpers/vllm.js';

/**
 * The real-vLLM tier: two real vLLM servers (CPU build, tiny model with dummy weights, one core
 * each) behind a real Envoy and the router. Slow to start (65-100 s), so everything shares one
 * fleet; every request is small and bounded.
 */
const MODEL = 'tiny';
const ADAPTER = 'tiny-lora';
const KV_BLOCKS = 256;

describe.skipIf(!vllmInstalled())('real vLLM behind Envoy and the router', () => {
  let servers: VllmServer[] = [];
  let stack: Stack;
  let client: OpenAI;

  const post = (url: string, path: string, body: unknown) =>
    fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  const metricsOf = async (server: VllmServer) => parseVllmMetrics(await (await fetch(`${server.url}/metrics`)).text());
  const prefixHits = async () => (await Promise.all(servers.map(metricsOf))).reduce((sum, m) => sum + (m.prefixCacheHits ?? 0), 0);

  beforeAll(async () => {
    // Each serves a LoRA adapter of the model too, listed by vLLM as a model whose parent is it.
    const lora = ['--enable-lora', '--lora-modules', `${ADAPTER}=${TINY_LORA}`, '--max-lora-rank', '8'];
    // Each publishes its KV events (ipc:// socket, replay on 127.0.0.1), which the router follows.
    servers = await startVllmServers(2, { model: MODEL, kvBlocks: KV_BLOCKS, extraArgs: lora, kvEvents: true });
    stack = await startStack({
      backends: servers.map(() => ({ models: [MODEL], declareModels: false })),
      backendUrls: servers.map((s) => s.url),
      backendKvEvents: servers.map((s) => ({ endpoint: s.kvEndpoint!, replayEndpoint: s.replayEndpoint })),
      // Real servers: probe at the default pace, with the default timeouts.
      config: { scraping: { intervalMs: 200 } },
      readyTimeoutMs: 30_000,
    });
    client = new OpenAI({ baseURL: `${stack.envoy.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  }, 360_000);
  afterAll(async () => {
    await stack?.close();
    await Promise.all(servers.map((s) => s.stop()));
  }, 60_000);

  it('lists the model and its LoRA adapter with the fields vLLM itself returns', async () => {
    const direct = (await (await fetch(`${servers[0]!.url}/v1/models`)).json()) as { data: Array<Record<string, unknown>> };
    const routed = (await (await fetch(`${stack.envoy.url}/v1/models`)).json()) as { data: Array<Record<string, unknown>> };
    expect(routed.data.map((m) => m.id)).toEqual([MODEL, ADAPTER]); // once each, though both servers serve both
    const adapter = routed.data[1]!;
    expect(Object.keys(adapter).sort()).toEqual(Object.keys(direct.data.find((m) => m.id === ADAPTER)!).sort());
    expect(adapter).toMatchObject({ id: ADAPTER, object: 'model', parent: MODEL, root: TINY_LORA });
    const viaAdapter = await client.completions.create({ model: ADAPTER, prompt: 'Once upon a time', max_tokens: 4 });
    expect(viaAdapter.model).toBe(ADAPTER);
    expect(viaAdapter.usage?.completion_tokens).toBeGreaterThan(0);
    const card = routed.data[0]!;
    expect(Object.keys(card).sort()).toEqual(Object.keys(direct.data[0]!).sort());
    expect(card).toMatchObject({ id: MODEL, object: 'model', owned_by: 'vllm', root: direct.data[0]!.root, parent: null, max_model_len: 4096 });
    expect(String(card.root)).toContain('model');
    expect((card.permission as unknown[]).length).toBe(1);
    const one = await fetch(`${stack.envoy.url}/v1/models/${MODEL}`);
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({ id: MODEL, max_model_len: 4096 });
  });

  it('serves chat and completions through the official OpenAI client, streaming with usage', async () => {
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, temperature: 0 });
    expect(chat.object).toBe('chat.completion');
    expect(chat.model).toBe(MODEL);
    expect(chat.usage?.completion_tokens).toBeGreaterThan(0);
    expect(chat.usage?.completion_tokens).toBeLessThanOrEqual(8);

    const completion = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 6, temperature: 0 });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices).toHaveLength(1);

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me a story' }],
      max_tokens: 10,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = 0;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) content++;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(content).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.prompt_tokens).toBeGreaterThan(0);

    // The raw framing: data: chunks, then the usage chunk, then [DONE].
    const raw = await post(stack.envoy.url, '/v1/completions', { model: MODEL, prompt: 'abc', max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    const text = await raw.text();
    expect(raw.headers.get('content-type')).toContain('text/event-stream');
    const events = text.split('\n\n').filter((e) => e.trim() !== '');
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(JSON.parse(events.at(-2)!.slice('data: '.length))).toMatchObject({ choices: [], usage: { completion_tokens: expect.any(Number) } });
  });

  it("reads vLLM's metrics as vLLM reports them", async () => {
    const text = await (await fetch(`${servers[0]!.url}/metrics`)).text();
    // Every series carries the engine label; the cache config says block size 32.
    expect(text).toMatch(/vllm:num_requests_running\{engine="0",model_name="tiny"\}/);
    expect(text).toMatch(/vllm:num_requests_waiting_by_reason\{engine="0",model_name="tiny",reason="capacity"\}/);
    expect(text).toMatch(/vllm:cache_config_info\{[^}]*block_size="32"/);
    // The router asks for the series it reads by name (/metrics/?name[]=...): a seventh of the
    // page, read into the same figures.
    const named = await (await fetch(`${servers[0]!.url}/metrics/?${READ_SERIES.map((n) => `name[]=${encodeURIComponent(n)}`).join('&')}`)).text();
    expect(named.length).toBeLessThan(text.length / 4);
    expect(parseVllmMetrics(named)).toEqual(parseVllmMetrics(text));
    for (const backend of stack.router.fleet.backends()) {
      expect(backend.metrics).toMatchObject({ blockSize: 32, numGpuBlocks: KV_BLOCKS, modelNames: [MODEL] });
      expect(backend.models).toEqual([MODEL, ADAPTER]);
    }
    // vllm:lora_requests_info appears once the engine has logged a step: after a request each.
    await Promise.all(servers.map(async (s) => (await post(s.url, '/v1/completions', { model: ADAPTER, prompt: 'x', max_tokens: 1 })).arrayBuffer()));
    const loraOf = () => stack.router.fleet.backends().map((b) => b.metrics?.lora);
    await waitFor(() => loraOf().every((l) => l !== undefined), 10_000, 'lora_requests_info scraped from both servers');
    // Which adapters are at work (one slot: vLLM's default --max-loras).
    for (const lora of loraOf()) expect(lora).toMatchObject({ maxLoras: 1, running: expect.any(Array), waiting: expect.any(Array) });
    const after = await (await fetch(`${servers[0]!.url}/metrics`)).text();
    expect(after).toMatch(/vllm:lora_requests_info\{[^}]*max_lora="1"[^}]*running_lora_adapters="[^"]*"[^}]*\} \d/);
  });

  it('passes vLLM errors through unchanged (prompt too long), and answers an unknown model as vLLM does', async () => {
    const long = { model: MODEL, prompt: 'word '.repeat(6000), max_tokens: 4 };
    const [direct, routed] = await Promise.all([post(servers[0]!.url, '/v1/completions', long), post(stack.envoy.url, '/v1/completions', long)]);
    expect(routed.status).toBe(direct.status);
    expect(direct.status).toBe(400);
    const [d, r] = [(await direct.json()) as { error: Record<string, unknown> }, (await routed.json()) as { error: Record<string, unknown> }];
    expect(r).toEqual(d);

    const unknown = { model: 'no-such-model', prompt: 'x', max_tokens: 1 };
    const [du, ru] = await Promise.all([post(servers[0]!.url, '/v1/completions', unknown), post(stack.envoy.url, '/v1/completions', unknown)]);
    expect(ru.status).toBe(du.status);
    const [dub, rub] = [(await du.json()) as { error: Record<string, unknown> }, (await ru.json()) as { error: Record<string, unknown> }];
    expect(Object.keys(rub.error).sort()).toEqual(Object.keys(dub.error).sort());
    expect(rub.error.type).toBe(dub.error.type);
  });

  it("gets more prefix-cache hits on vLLM's own counters than round robin, on the same prompts", async () => {
    // Three long system prompts, four questions each, in an order where round robin over two
    // servers sends each prompt to both. Fresh prompts for each run so neither finds the
    // other's cache.
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
    const systemPrompt = (run: string, p: number) =>
      `${run} prompt ${p}: ` + Array.from({ length: 700 }, (_, i) => words[(i * 7 + p * 3 + run.length) % words.length]).join(' ');
    const requests = (run: string) => Array.from({ length: 12 }, (_, i) => ({ model: MODEL, prompt: `${systemPrompt(run, i % 3)}\nQuestion ${i}?`, max_tokens: 2 }));

    const before = await prefixHits();
    let turn = 0;
    for (const body of requests('round robin')) {
      const res = await post(servers[turn++ % 2]!.url, '/v1/completions', body);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const afterRoundRobin = await prefixHits();
    for (const body of requests('router')) {
      const res = await post(stack.envoy.url, '/v1/completions', body);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const afterRouter = await prefixHits();
    const roundRobinHits = afterRoundRobin - before;
    const routerHits = afterRouter - afterRoundRobin;
    expect(roundRobinHits).toBeGreaterThan(0);
    expect(routerHits).toBeGreaterThan(roundRobinHits * 1.2);
  });

  it("learns each server's speed from vLLM's own histograms and checks its TTFT prediction against them", async () => {
    // Sequential and concurrent requests, so the batch varies and prefills are measured.
    const body = (i: number) => ({ model: MODEL, prompt: `learning ${i} ` + 'lorem ipsum dolor sit amet '.repeat(40), max_tokens: 8 });
    for (let round = 0; round < 6; round++) {
      const replies = await Promise.all([0, 1, 2, 3].map((k) => post(stack.envoy.url, '/v1/completions', body(round * 4 + k))));
      for (const res of replies) {
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
    }
    // Two scrapes after the last request (200 ms each) carry its histograms.
    await new Promise((r) => setTimeout(r, 600));
    for (const backend of stack.router.fleet.backends()) {
      const r = backend.rates;
      expect(r.prefillPerTokenS, backend.id).toBeGreaterThan(0);
      expect(r.stepBaseS! + r.stepPerSequenceS!, backend.id).toBeGreaterThan(0);
      expect(r.slotHoldS, backend.id).toBeGreaterThan(0);
      expect(r.outputTokens, backend.id).toBeGreaterThan(1);
      expect(r.ttftMeasuredS, backend.id).toBeGreaterThan(0);
      expect(r.ttftPredictedS, backend.id).toBeGreaterThan(0);
    }
  });
  /**
   * The request just sent straight to `server` is over in the router's view too: a scrape taken
   * while it ran shows the holder busy, and an idle peer can then be the better pick.
   */
  const idleInRoutersView = (server: VllmServer) =>
    waitFor(() => {
      const m = stack.router.fleet.backends().find((b) => b.url === server.url)!.metrics;
      return m !== undefined && m.running === 0 && m.waiting === 0;
    }, 10_000, "the holder idle in the router's view");

  it("follows vLLM's own KV events, stores and evictions, and routes a token-id prompt to the server that holds it", async () => {
    type Stats = { backends: Array<{ url: string; cache: { source: string; events: { blocks?: number; batches: number } | null } }> };
    const stats = async () => ((await (await fetch(`http://127.0.0.1:${stack.router.adminPort}/stats`)).json()) as Stats).backends;
    const eventsOf = async (server: VllmServer) => (await stats()).find((b) => b.url === server.url)!.cache.events;
    const blocksOf = async (server: VllmServer) => (await eventsOf(server))?.blocks ?? 0;
    const batchesOf = async (server: VllmServer) => (await eventsOf(server))?.batches ?? 0;
    await waitFor(async () => (await stats()).every((b) => b.cache.source === 'events'), 30_000, "both servers' events followed");
    // Token ids (vLLM keeps a token-id prompt as given): 10 blocks of 32 per prompt.
    const tokens = (seed: number) => Array.from({ length: 320 }, (_, i) => 10 + ((i * 37 + seed * 1009) % 4000));
    const complete = async (url: string, prompt: number[]) => {
      const res = await post(url, '/v1/completions', { model: MODEL, prompt, max_tokens: 1 });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    const routed = () => servers.map((s) => stack.router.fleet.backends().find((b) => b.url === s.url)!.routed);
    for (let p = 0; p < 4; p++) {
      // Cached on one server behind the router's back (a direct client, another replica).
      const holder = servers[p % 2]!;
      // (Its cache is full from the tests before: blocks stored now evict as many, so count batches.)
      const batches = await batchesOf(holder);
      await complete(holder.url, tokens(p));
      await waitFor(async () => (await batchesOf(holder)) > batches, 10_000, 'the stored blocks reported');
      await idleInRoutersView(holder);
      const before = routed();
      await complete(stack.envoy.url, [...tokens(p), 5, 6, 7]);
      expect(routed().map((n, i) => n - before[i]!)).toEqual(servers.map((s) => (s === holder ? 1 : 0)));
    }
    // 40 more prompts (400 blocks) into one server's 256: vLLM evicts, and the index follows it.
    for (let p = 100; p < 140; p++) await complete(servers[0]!.url, tokens(p));
    await waitFor(async () => (await blocksOf(servers[0]!)) <= KV_BLOCKS, 10_000, 'evictions applied');
    expect(await blocksOf(servers[0]!)).toBeGreaterThan(KV_BLOCKS / 2);
  });

  it("tokenizes as vLLM does, and routes a chat conversation to the server whose events say it holds its start", async () => {
    await stack.writeConfig(stack.routerConfig({ tokenizers: { [MODEL]: TINY_MODEL } }));
    await waitFor(() => stack.router.config().tokenizers[MODEL] === TINY_MODEL, 10_000, 'the config with the tokenizer applied');
    expect(stack.reloadErrors).toEqual([]);
    const router = loadModelTokenizer(TINY_MODEL, 1 << 20);
    const idsOf = async (body: Record<string, unknown>) => ((await (await post(servers[0]!.url, '/tokenize', body)).json()) as { tokens: number[] }).tokens;
    const conversation = (n: number, question: string) => [
      { role: 'system', content: `Conversation ${n}. You answer questions about the following document, section by section, in plain words. `.repeat(6) },
      { role: 'user', content: question },
    ];
    // The same ids as vLLM's own tokenizer and template: chat, completion, multi-part content.
    const samples: Array<[string, Record<string, unknown>]> = [
      ['/v1/chat/completions', { model: MODEL, messages: conversation(0, 'Summarise the first section, émigré café, 日本語 🎉.') }],
      ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: 'world' }] }] }],
      ['/v1/completions', { model: MODEL, prompt: 'Once upon a time,  there were\n\ntwo servers.' }],
      // Long enough to be encoded in pieces (cut between words), which must not change an id.
      ['/v1/completions', { model: MODEL, prompt: 'Section 12: the émigré café served 4567 cups, "quoted" (twice)\n\n  日本語 🎉 it\'s done. '.repeat(40) }],
    ];
    for (const [path, body] of samples) {
      const ours = promptTokens(router, path, Buffer.from(JSON.stringify(body)));
      const theirs = await idsOf(path === '/v1/completions' ? { model: MODEL, prompt: body['prompt'] } : { model: MODEL, messages: body['messages'] });
      expect({ path, ids: ours.ok ? Array.from(ours.reader.readAll()) : ours.why }).toEqual({ path, ids: theirs });
    }
    const chat = async (url: string, model: string, messages: unknown) => {
      const res = await post(url, '/v1/chat/completions', { model, messages, max_tokens: 1 });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    const batchesOf = (server: VllmServer) => stack.router.fleet.backends().find((b) => b.url === server.url)!.cacheEvents?.batches ?? 0;
    const routed = () => servers.map((s) => stack.router.fleet.backends().find((b) => b.url === s.url)!.routed);
    // The base model, then its adapter: an adapter's blocks are its own (vLLM names it in its
    // events), and its text is read with its base model's tokenizer.
    let adapterRoutedAt = 0;
    for (const [p, model] of [[1, MODEL], [2, MODEL], [3, MODEL], [4, MODEL], [11, ADAPTER], [12, ADAPTER]] as const) {
      const holder = servers[p % 2]!;
      const batches = batchesOf(holder);
      await chat(holder.url, model, conversation(p, 'Summarise the first section.'));
      await waitFor(() => batchesOf(holder) > batches, 10_000, 'the stored blocks reported');
      await idleInRoutersView(holder);
      // The adapter the router sent the other server a moment ago counts as at work there for
      // a while (an adapter to load costs more than this short prompt's prefill): let it lapse,
      // so that the two servers differ only in what their caches hold.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, adapterRoutedAt + RECENT_ADAPTER_MS + 100 - Date.now())));
      const before = routed();
      if (model === ADAPTER) adapterRoutedAt = Date.now();
      await chat(stack.envoy.url, model, conversation(p, 'And the second one?'));
      expect({ model, conversation: p, routed: routed().map((n, i) => n - before[i]!) }).toEqual({ model, conversation: p, routed: servers.map((s) => (s === holder ? 1 : 0)) });
    }
  });
});
