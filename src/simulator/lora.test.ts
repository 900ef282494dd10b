import { afterEach, describe, expect, it } from 'vitest';
import { parseVllmMetrics } from '../fleet/vllm-metrics.js';
import { parseCliArgs, UsageError } from './cli-args.js';
import { createVirtualClock } from './clock.js';
import { createEngine, type FinishedRequest } from './engine.js';
import type { BlockStoredEvent } from './kv-cache.js';
import { startSimulator, type SimulatorHandle } from './server.js';

function engineWithAdapters(maxLoras: number) {
  const clock = createVirtualClock();
  const engine = createEngine({ maxLoras, loraLoadMs: 30, maxNumSeqs: 8 }, { clock });
  const finished: FinishedRequest[] = [];
  const submit = (id: string, lora: string | undefined, prompt: number[], output = 20) =>
    engine.addRequest(
      { requestId: id, model: lora ?? 'm', promptTokenIds: prompt, outputTokenIds: Array.from({ length: output }, (_, i) => 7 + i), finishReason: 'length', ...(lora ? { lora } : {}) },
      { onToken: () => {}, onFinish: (r) => finished.push(r) },
    );
  return { clock, engine, submit, finished };
}

const prompt = (n: number, salt = 0) => Array.from({ length: n }, (_, i) => 1000 + salt * 10_000 + i);

describe('simulated LoRA adapters', () => {
  it('holds at most max_loras adapters in a batch, the others waiting their turn', () => {
    const { clock, engine, submit, finished } = engineWithAdapters(2);
    submit('a1', 'a', prompt(64, 1));
    submit('b1', 'b', prompt(64, 2));
    submit('c1', 'c', prompt(64, 3));
    submit('base', undefined, prompt(64, 4));
    clock.advanceTo(80); // the first step ends: 6 + 0.05 * 256 ms, and two loads of 30
    // a and b take both slots; c waits, the base model needs none.
    expect(engine.stats()).toMatchObject({ running: 3, waiting: 1, runningLoras: ['a', 'b'], waitingLoras: ['c'] });
    clock.advanceTo(60_000);
    expect(finished.map((r) => r.requestId).sort()).toEqual(['a1', 'b1', 'base', 'c1']);
    expect(engine.stats().loraLoads).toBe(3);
    const c = finished.find((r) => r.requestId === 'c1')!;
    const a = finished.find((r) => r.requestId === 'a1')!;
    expect(c.timings.scheduledMs!).toBeGreaterThanOrEqual(a.timings.finishedMs);
  });

  it('keeps an adapter loaded while it is used, and loads it again once evicted', () => {
    const { clock, engine, submit } = engineWithAdapters(1);
    submit('a1', 'a', prompt(32, 1));
    clock.advanceTo(60_000);
    submit('a2', 'a', prompt(32, 2));
    clock.advanceTo(120_000);
    expect(engine.stats().loraLoads).toBe(1);
    submit('b1', 'b', prompt(32, 3));
    clock.advanceTo(180_000);
    submit('a3', 'a', prompt(32, 4));
    clock.advanceTo(240_000);
    expect(engine.stats().loraLoads).toBe(3);
  });

  it("caches an adapter's blocks apart from the base model's and names the adapter in its KV events", () => {
    const { clock, engine, submit, finished } = engineWithAdapters(2);
    const stored: BlockStoredEvent[] = [];
    engine.kvEvents.on('stored', (e) => stored.push(e));
    const shared = prompt(128);
    submit('base', undefined, shared);
    clock.advanceTo(60_000);
    submit('a', 'a', shared);
    clock.advanceTo(120_000);
    submit('a-again', 'a', shared);
    clock.advanceTo(180_000);
    const cached = Object.fromEntries(finished.map((r) => [r.requestId, r.cachedTokens]));
    expect(cached).toEqual({ base: 0, a: 0, 'a-again': 112 });
    const hashes = (lora: string | null) => stored.filter((e) => (e.lora ?? null) === lora).flatMap((e) => e.blockHashes);
    expect(hashes(null).length).toBeGreaterThan(0);
    expect(hashes('a').length).toBe(hashes(null).length);
    expect(hashes('a').filter((h) => hashes(null).includes(h))).toEqual([]);
  });

  it("reads vLLM's LoRA flags: --lora-modules lists, JSON modules, --max-loras", () => {
    const options = parseCliArgs(['--model', 'm', '--enable-lora', '--lora-modules', 'a=/x', 'b=/y', '--lora-modules', '{"name":"c","path":"/z"}', '--max-loras', '4', '--lora-load-ms', '5']);
    expect(options).toMatchObject({
      loraModules: [
        { name: 'a', path: '/x' },
        { name: 'b', path: '/y' },
        { name: 'c', path: '/z' },
      ],
      engine: { maxLoras: 4, loraLoadMs: 5 },
    });
    expect(() => parseCliArgs(['--model', 'm', '--lora-modules', 'a=/x'])).toThrow(new UsageError('--lora-modules needs --enable-lora'));
    expect(() => parseCliArgs(['--model', 'm', '--enable-lora', '--lora-modules', 'a'])).toThrow(/NAME=PATH/);
    expect(() => parseCliArgs(['--model', 'm', '--enable-lora', '--lora-modules', 'a=/x', 'a=/y'])).toThrow(/more than once/);
  });
});

describe('a simulated server with adapters', () => {
  let sim: SimulatorHandle | undefined;
  afterEach(async () => sim?.close());

  it('lists each adapter with its parent, serves it, and reports it in lora_requests_info', async () => {
    sim = await startSimulator({ models: ['m'], loraModules: [{ name: 'sql', path: '/adapters/sql' }], engine: { maxLoras: 2, timeScale: 0.05 } });
    const models = (await fetch(`${sim.url}/v1/models`).then((r) => r.json())) as { data: Array<{ id: string; parent: string | null; root: string }> };
    expect(models.data.map(({ id, parent, root }) => ({ id, parent, root }))).toEqual([
      { id: 'm', parent: null, root: 'm' },
      { id: 'sql', parent: 'm', root: '/adapters/sql' },
    ]);
    const reply = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'sql', prompt: 'hello', max_tokens: 3 }) });
    expect(reply.status).toBe(200);
    expect(((await reply.json()) as { model: string }).model).toBe('sql');
    expect(sim.stats()).toMatchObject({ loraLoads: 1, requestsByModel: { m: 0, sql: 1 } });
    const page = await fetch(`${sim.url}/metrics`).then((r) => r.text());
    expect(parseVllmMetrics(page).lora).toEqual({ maxLoras: 2, running: [], waiting: [] });
    const unknown = await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nope', prompt: 'x' }) });
    expect(unknown.status).toBe(404);
  });
});
