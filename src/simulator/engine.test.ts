import { describe, expect, it } from 'vitest';
import { createVirtualClock } from './clock.js';
import { createEngine, type EngineRequest, type FinishedRequest } from './engine.js';
import type { EngineOptions } from './engine-options.js';

interface Tracked {
  tokens: number[];
  tokenTimes: number[];
  finished?: FinishedRequest;
}

function setup(options: Partial<EngineOptions>) {
  const clock = createVirtualClock();
  const engine = createEngine(options, { clock });
  const tracked = new Map<string, Tracked>();
  function submit(id: string, prompt: number[], outputLength: number, finishReason: 'stop' | 'length' = 'length') {
    const t: Tracked = { tokens: [], tokenTimes: [] };
    tracked.set(id, t);
    const request: EngineRequest = {
      requestId: id,
      model: 'm',
      promptTokenIds: prompt,
      outputTokenIds: Array.from({ length: outputLength }, (_, i) => 100 + i),
      finishReason,
    };
    engine.addRequest(request, {
      onToken(_index, tokenId) {
        t.tokens.push(tokenId);
        t.tokenTimes.push(clock.now());
      },
      onFinish(result) {
        t.finished = result;
      },
    });
    return t;
  }
  return { clock, engine, submit, tracked };
}

/** Distinct prompts: token values never repeat between prompts with different `salt`. */
function prompt(length: number, salt: number): number[] {
  return Array.from({ length }, (_, i) => 1000 + salt * 100_000 + i);
}

function ttft(t: Tracked): number {
  const f = t.finished;
  if (!f || f.timings.firstTokenMs === null) throw new Error('request did not produce a token');
  return f.timings.firstTokenMs - f.timings.arrivalMs;
}

describe('engine scheduling', () => {
  it('queues beyond maxNumSeqs and serves FCFS, so later requests wait longer', () => {
    const { clock, engine, submit } = setup({ maxNumSeqs: 2 });
    const reqs = Array.from({ length: 6 }, (_, i) => submit(`r${i}`, prompt(200, i), 20));
    // vLLM's gauges move with its steps: nothing shows before the first one ends.
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0 });
    clock.advanceTo(0); // the first step starts: two admitted
    let maxWaiting = 0;
    for (let guard = 0; guard < 10_000 && clock.pending() > 0; guard++) {
      const s = engine.stats();
      expect(s.running).toBeLessThanOrEqual(2);
      maxWaiting = Math.max(maxWaiting, s.waiting);
      clock.runUntilIdle(1);
    }
    expect(maxWaiting).toBe(4);
    expect(reqs.every((r) => r.finished?.finishReason === 'length' && r.tokens.length === 20)).toBe(true);
    const ttfts = reqs.map(ttft);
    // Pairs are admitted together; each later pair waits for the earlier one to finish.
    expect(ttfts[2]).toBeGreaterThan((ttfts[1] as number) * 2);
    expect(ttfts[4]).toBeGreaterThan(ttfts[2] as number);
    const s = engine.stats();
    expect(s).toMatchObject({ running: 0, waiting: 0, requestsTotal: 6, generationTokens: 120, promptTokens: 1200 });
    expect(s.requestsByModel).toEqual({ m: 6 });
  });

  it('models step time: base + prefill tokens + decoding sequences, times timeScale', () => {
    const { clock, submit } = setup({ stepBaseMs: 6, prefillMsPerToken: 0.05, decodeMsPerSeq: 0.15, timeScale: 2 });
    const r = submit('a', prompt(400, 1), 3);
    clock.runUntilIdle();
    // prefill step: (6 + 0.05 * 400) * 2 = 52 ms; each decode step: (6 + 0.15) * 2 = 12.3 ms
    expect(r.tokenTimes[0]).toBeCloseTo(52, 6);
    expect(r.tokenTimes[1]).toBeCloseTo(64.3, 6);
    expect(r.tokenTimes[2]).toBeCloseTo(76.6, 6);
  });

  it('splits long prompts into chunks of maxNumBatchedTokens', () => {
    const { clock, engine, submit } = setup({ maxNumBatchedTokens: 512, maxModelLen: 4096 });
    const r = submit('a', prompt(2000, 1), 2);
    clock.runUntilIdle();
    // 2000 prompt tokens over a 512-token budget: 4 steps of prefill, then 1 decode step.
    expect(engine.stats().steps).toBe(5);
    expect(r.tokens).toEqual([100, 101]);
  });

  it('decode gets slower as the batch grows', () => {
    const single = setup({});
    const a = single.submit('a', prompt(16, 1), 10);
    single.clock.runUntilIdle();
    const crowded = setup({});
    const b = crowded.submit('b', prompt(16, 1), 10);
    for (let i = 0; i < 40; i++) crowded.submit(`x${i}`, prompt(16, i + 2), 10);
    crowded.clock.runUntilIdle();
    const itl = (t: Tracked) => ((t.tokenTimes.at(-1) as number) - (t.tokenTimes[0] as number)) / (t.tokenTimes.length - 1);
    expect(itl(b)).toBeGreaterThan(itl(a) + 40 * 0.15 * 0.9);
  });

  it('abort frees the slot and the blocks at once', () => {
    const { clock, engine, submit } = setup({ maxNumSeqs: 1 });
    const a = submit('a', prompt(100, 1), 1000);
    const b = submit('b', prompt(100, 2), 5);
    clock.advanceTo(50);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 1 });
    expect(engine.stats().kvCacheUsage).toBeGreaterThan(0);
    expect(engine.abort('a')).toBe(true);
    expect(a.finished?.finishReason).toBe('abort');
    expect(engine.stats().kvCacheUsage).toBe(0);
    // The counts are the steps': the one under way ends without a, the next admits b.
    clock.runUntilIdle(1);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 1 });
    clock.runUntilIdle(1);
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    clock.runUntilIdle();
    expect(b.finished?.finishReason).toBe('length');
    expect(engine.abort('a')).toBe(false);
    expect(engine.stats().requestsByFinishReason).toEqual({ stop: 0, length: 1, abort: 1 });
  });

  it('counts a request that arrived during a step as waiting only once a step left it waiting, as vLLM reports', () => {
    const { clock, engine, submit } = setup({ maxNumSeqs: 2, timeScale: 1 });
    submit('a', prompt(200, 1), 50);
    clock.advanceTo(0);
    clock.advanceTo(5); // within the first step (6 + 0.05 * 200 = 16 ms)
    submit('b', prompt(200, 2), 50);
    submit('c', prompt(200, 3), 50);
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0 });
    clock.runUntilIdle(1); // the first step ends: a runs, b and c were not yet scheduled
    expect(engine.stats()).toMatchObject({ running: 1, waiting: 0 });
    clock.runUntilIdle(1); // the second: b joins, c finds no slot
    expect(engine.stats()).toMatchObject({ running: 2, waiting: 1 });
  });

  it('caches a prefix as it is scheduled, as vLLM does: a request scheduled with one prefilling it finds it cached', () => {
    const { clock, submit } = setup({ timeScale: 1 });
    const shared = prompt(200, 1);
    const a = submit('a', shared, 2);
    const b = submit('b', shared, 2);
    clock.runUntilIdle();
    expect(a.finished?.cachedTokens).toBe(0);
    // All but the last (partial) block and the token always computed: 12 blocks of 16.
    expect(b.finished?.cachedTokens).toBe(192);
  });

  it('runs one step chain when listeners submit follow-up requests', () => {
    const { clock, engine } = setup({ timeScale: 1 });
    const finishTimes: number[] = [];
    const chain = (n: number) =>
      engine.addRequest(
        { requestId: `c${n}`, model: 'm', promptTokenIds: prompt(16, n), outputTokenIds: [7, 7, 7], finishReason: 'length' },
        {
          onToken() {},
          onFinish(result) {
            finishTimes.push(result.timings.finishedMs);
            if (n < 5) chain(n + 1);
          },
        },
      );
    chain(0);
    clock.runUntilIdle();
    expect(finishTimes).toHaveLength(6);
    // Each request: one prefill step (6.8 ms) and two decode steps (6.15 ms), back to back.
    const per = finishTimes.map((t, i) => t - (i === 0 ? 0 : (finishTimes[i - 1] as number)));
    for (const d of per) expect(d).toBeCloseTo(6 + 0.05 * 16 + 2 * 6.15, 6);
    expect(engine.stats().steps).toBe(18);
  });

  it('rejects requests longer than maxModelLen', () => {
    const { submit } = setup({ maxModelLen: 128 });
    expect(() => submit('a', prompt(100, 1), 29)).toThrow(/max_model_len 128/);
  });
});

describe('prefix cache', () => {
  it('serves a repeated prompt from cache: hits = whole blocks short of the last token, lower TTFT', () => {
    const { clock, engine, submit } = setup({});
    const p = prompt(1000, 7);
    const first = submit('a', p, 4);
    clock.runUntilIdle();
    const second = submit('b', p, 4);
    clock.runUntilIdle();
    expect(first.finished?.cachedTokens).toBe(0);
    // 999 tokens may be cached; rounded down to 16-token blocks.
    expect(second.finished?.cachedTokens).toBe(992);
    const s = engine.stats();
    expect(s.prefixCacheQueries).toBe(2000);
    expect(s.prefixCacheHits).toBe(992);
    expect(ttft(second)).toBeLessThan(ttft(first) / 3);
  });

  it('always recomputes the last prompt token, even when the prompt fills whole blocks', () => {
    const { clock, submit } = setup({});
    const p = prompt(1024, 8);
    submit('a', p, 2);
    clock.runUntilIdle();
    const again = submit('b', p, 2);
    clock.runUntilIdle();
    expect(again.finished?.cachedTokens).toBe(1008);
    expect(again.tokens).toHaveLength(2);
  });

  it('shares the common prefix of different prompts', () => {
    const { clock, submit } = setup({});
    const shared = prompt(320, 3);
    submit('a', [...shared, ...prompt(50, 4)], 2);
    clock.runUntilIdle();
    const b = submit('b', [...shared, ...prompt(80, 5)], 2);
    clock.runUntilIdle();
    expect(b.finished?.cachedTokens).toBe(320);
  });

  it('caches generated tokens too, so the next turn of a conversation hits them', () => {
    const { clock, submit } = setup({});
    const turn1 = prompt(64, 1);
    const a = submit('a', turn1, 40);
    clock.runUntilIdle();
    const turn2 = [...turn1, ...a.tokens, ...prompt(30, 2)];
    const b = submit('b', turn2, 2);
    clock.runUntilIdle();
    // The last sampled token is never computed, so 64 + 39 computed tokens -> 6 full blocks.
    expect(b.finished?.cachedTokens).toBe(96);
  });

  it('evicts least recently freed blocks when the pool is small, and reports KV events', () => {
    const { clock, engine, submit } = setup({ numGpuBlocks: 64, maxModelLen: 1024 });
    const stored: number[] = [];
    const removed: number[] = [];
    engine.kvEvents.on('stored', (e) => {
      expect(e.tokenIds.length).toBe(e.blockHashes.length * e.blockSize);
      stored.push(...e.blockHashes);
    });
    engine.kvEvents.on('removed', (e) => removed.push(...e.blockHashes));
    const pa = prompt(480, 1);
    submit('a', pa, 1);
    clock.runUntilIdle();
    expect(stored.length).toBe(30);
    // 30 of 64 blocks hold a's prompt (free but cached); b needs 57 blocks, so 23 of a's go.
    submit('b', prompt(900, 2), 10);
    clock.runUntilIdle();
    expect(removed.length).toBeGreaterThan(0);
    expect(stored).toEqual(expect.arrayContaining(removed));
    const again = submit('c', pa, 1);
    clock.runUntilIdle();
    const cached = again.finished?.cachedTokens ?? -1;
    expect(cached).toBeLessThan(480 - 16);
    expect(cached % 16).toBe(0);
  });
});

describe('preemption', () => {
  it('preempts the newest request when blocks run out, then recomputes it', () => {
    const { clock, engine, submit } = setup({ numGpuBlocks: 32, maxModelLen: 512, maxNumSeqs: 8 });
    const reqs = Array.from({ length: 4 }, (_, i) => submit(`r${i}`, prompt(100, i), 150));
    for (let guard = 0; guard < 100_000 && clock.pending() > 0; guard++) {
      expect(engine.stats().kvCacheUsage).toBeLessThanOrEqual(1);
      clock.runUntilIdle(1);
    }
    expect(engine.stats().numPreemptions).toBeGreaterThan(0);
    for (const r of reqs) {
      expect(r.finished?.finishReason).toBe('length');
      expect(r.tokens).toEqual(Array.from({ length: 150 }, (_, i) => 100 + i));
    }
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0, kvCacheUsage: 0 });
  });
});

describe('options', () => {
  it('refuses a max_model_len the KV cache cannot hold, as vLLM does', () => {
    expect(() => createEngine({ numGpuBlocks: 10, blockSize: 16, maxModelLen: 1000 })).toThrow(
      /max_model_len \(1000\) is larger than the maximum number of tokens that can be stored in KV cache \(160/,
    );
    expect(() => createEngine({ maxNumSeqs: 0 })).toThrow(/maxNumSeqs must be a positive integer/);
  });
});

describe('timer granularity', () => {
  it('keeps sub-millisecond steps on schedule by chaining absolute deadlines', () => {
    // A clock whose timers behave like setTimeout: never sooner than 1 ms, whole milliseconds.
    const virtual = createVirtualClock();
    const coarse = {
      now: () => virtual.now(),
      after: (delayMs: number, fn: () => void) => virtual.after(delayMs <= 0 ? 0 : Math.max(1, Math.ceil(delayMs)), fn),
    };
    const engine = createEngine({ timeScale: 0.05 }, { clock: coarse }); // decode step: 6.15 ms * 0.05 = 0.3075 ms
    let finishedAt = -1;
    let result: FinishedRequest | undefined;
    engine.addRequest(
      { requestId: 'a', model: 'm', promptTokenIds: [1, 2, 3], outputTokenIds: new Array<number>(400).fill(5), finishReason: 'length' },
      {
        onToken() {},
        onFinish(r) {
          result = r;
          finishedAt = virtual.now();
        },
      },
    );
    virtual.runUntilIdle(10_000);
    // 400 steps of ~0.31 ms is ~123 ms; one timer per step (>= 1 ms each) would take 400 ms or more.
    expect(result?.outputTokens).toBe(400);
    expect(finishedAt).toBeGreaterThan(115);
    expect(finishedAt).toBeLessThan(135);
    engine.stop();
  });
});
