import { describe, expect, it } from 'vitest';
import type { BackendView, ServiceRates } from '../fleet/backend.js';
import { emptyServiceRates } from '../fleet/service-rates.js';
import { backendView, vllmLoad, type MutableBackendView } from '../../test/helpers/backend-view.js';
import { parseConfig } from '../config/load.js';
import { createSchedulerMemory } from './memory.js';
import { schedulerFromConfig } from './registry.js';
import { PRIOR_SPEED, prefillingTokens, pricedSpeed, serviceTime, speedsOf } from './service-time.js';
import type { SchedulingRequest } from './types.js';

const load = (running: number, waiting: number) => vllmLoad(running, waiting);

/** A server measured over many requests: step 20 ms + 1 ms per sequence, 0.1 ms per prefilled token, times `slowdown`. */
const measured = (slowdown: number, over: Partial<ServiceRates> = {}): ServiceRates => ({
  ...emptyServiceRates(),
  stepBaseS: 0.02 * slowdown,
  stepPerSequenceS: 0.001 * slowdown,
  prefillPerTokenS: 0.0001 * slowdown,
  slotHoldS: 0.5 * slowdown,
  admissionS: 0.01 * slowdown,
  outputTokens: 20,
  measuredRequests: 1000,
  ...over,
});

const backend = (id: string, rates: ServiceRates, over: Partial<BackendView> = {}) => backendView(id, { rates, ...over });
type Mutable = MutableBackendView;

describe('speeds', () => {
  it('takes a figure a backend has not shown from its peers, else from the prior', () => {
    const [known, unknown] = speedsOf([backend('a', measured(1)), backend('b', emptyServiceRates())]);
    expect(known!.prefillPerTokenS).toBeCloseTo(0.0001, 8);
    expect(unknown!.prefillPerTokenS).toBeCloseTo(0.0001, 8);
    expect(speedsOf([backend('c', emptyServiceRates())])[0]).toEqual(PRIOR_SPEED);
  });

  it("takes the front end's time and the output length as the requests', the same on every server", () => {
    const [busy, quiet] = speedsOf([
      backend('a', measured(1, { frontEndS: 0.2, outputTokens: 40, measuredRequests: 100 })),
      backend('b', measured(1, { frontEndS: 0.02, outputTokens: 20, measuredRequests: 100 })),
    ]);
    expect(busy!.frontEndS).toBeCloseTo(0.11, 9);
    expect(quiet!.frontEndS).toBeCloseTo(0.11, 9);
    expect(busy!.outputTokens).toBeCloseTo(30, 9);
    // A server's own speed stays its own.
    expect(busy!.prefillPerTokenS).toBeCloseTo(0.0001, 9);
  });

  it('weighs a backend that has shown little against its peers, so it is not starved on one early figure', () => {
    const [fast, , lightlyMeasured] = speedsOf([
      backend('a', measured(1)),
      backend('b', measured(1)),
      backend('c', measured(10, { measuredRequests: 1 })),
    ]);
    expect(fast!.prefillPerTokenS).toBeCloseTo(0.0001, 5);
    // One request's worth of a tenfold figure moves it a fifth of the way.
    expect(lightlyMeasured!.prefillPerTokenS).toBeGreaterThan(0.00015);
    expect(lightlyMeasured!.prefillPerTokenS).toBeLessThan(0.0003);
  });
});

describe('service time', () => {
  it('prices the first token by the backend\'s own prefill rate and step', () => {
    const [speed] = speedsOf([backend('a', measured(1))]);
    const t = serviceTime(backend('a', measured(1)), speed!, 1000, 1000, 0);
    // admission 10 ms + one step with itself (21 ms) + 1000 tokens at 0.1 ms.
    expect(t.firstTokenS).toBeCloseTo(0.01 + 0.021 + 0.1, 6);
    expect(t.slotWaitS).toBe(0);
    expect(t.dragS).toBe(0);
  });

  it('waits for a slot on a full backend: one frees every slot hold / (slots + 1)', () => {
    const full = backend('a', measured(1), { metrics: load(8, 3), inflight: 0, queueing: true });
    const [speed] = speedsOf([full]);
    const t = serviceTime(full, speed!, 1, 1000, 0);
    expect(t.slotWaitS).toBeCloseTo(((3 + 1) * 0.5) / 9, 6);
    // The queue's prefill (0.3 s) runs while it waits for a slot (0.22 s), then its own.
    expect(t.firstTokenS).toBeCloseTo(3 * 1000 * 0.0001 + 0.02 + 0.001 * 9 + 0.0001, 6);
    // Behind short prompts, the slot is the longer wait.
    const short = serviceTime(full, speed!, 1, 100, 0);
    expect(short.firstTokenS).toBeCloseTo(short.slotWaitS + 0.02 + 0.001 * 9 + 0.0001, 6);
    // Its prefill stalls the 8 running, and it slows each of their steps.
    expect(t.dragS).toBeCloseTo(8 * (1 * 0.0001 + 10 * 0.001), 6);
  });
});

describe('prefill ahead', () => {
  it('counts what we sent that is still prefilling, each after those sent before it: it shares the steps with ours', () => {
    // Speed: a 20 ms step, 0.1 ms a token. Sent at 900 and 950 ms: the first prefills until
    // 900 + 20 + 80 = 1000, the second after it until 1000 + 20 + 60 = 1080.
    const predictedTtft = [
      { dueAt: 900 + 500, seconds: 0.5, prefillTokens: 800 },
      { dueAt: 950 + 500, seconds: 0.5, prefillTokens: 600 },
    ];
    const busy = backend('a', measured(1), { metrics: load(2, 0), inflight: 2, predictedTtft });
    const [speed] = speedsOf([busy]);
    // At 990: a tenth of the first is left, all of the second (it starts at 1000).
    expect(prefillingTokens(busy, speed!, 990)).toBeCloseTo(80 + 600, 6);
    expect(prefillingTokens(busy, speed!, 1040)).toBeCloseTo(600 / 2, 6);
    expect(prefillingTokens(busy, speed!, 1080)).toBe(0);
    // Only the latest requests count: thousands pile up while a backend's metrics cannot be read.
    const piled = Array.from({ length: 4096 }, () => ({ dueAt: 2000, seconds: 1, prefillTokens: 10 }));
    expect(prefillingTokens(backend('p', measured(1), { predictedTtft: piled }), speed!, 1000)).toBe(64 * 10);
    const idle = serviceTime({ ...busy, predictedTtft: [] }, speed!, 1000, 1000, 990);
    const behind = serviceTime(busy, speed!, 1000, 1000, 990);
    expect(behind.firstTokenS - idle.firstTokenS).toBeCloseTo(680 * 0.0001, 6);
  });
});

describe('first-token-cost on fleets nobody tuned it for', () => {
  const scheduler = () => {
    const config = parseConfig({});
    let seed = 3;
    return schedulerFromConfig(config, createSchedulerMemory(config), () => ((seed = (seed * 16807) % 2147483647) / 2147483647));
  };
  const prompt = (i: number): SchedulingRequest => ({ model: 'm', stream: true, prompt: { kind: 'text', bytes: Buffer.from(`request ${i} `.repeat(300)) } });

  it('sends fewer requests to a server three times slower, by its measured speed', () => {
    const s = scheduler();
    const fleet = [backend('f', measured(1)), backend('s', measured(3))];
    const served = new Map<string, number>();
    const active: Mutable[] = [];
    // A closed loop of 14: more than the fast server's 8 slots.
    for (let i = 0; i < 300; i++) {
      const d = s.schedule(prompt(i), fleet);
      if (d.kind !== 'route') throw new Error(d.code);
      const b = d.primary as Mutable;
      served.set(b.id, (served.get(b.id) ?? 0) + 1);
      b.inflight++;
      active.push(b);
      if (active.length > 14) active.shift()!.inflight--;
    }
    expect(served.get('f')!).toBeGreaterThan(served.get('s')! * 1.3);
    expect(served.get('s')!).toBeGreaterThan(0);
  });

  it('goes to the slow server rather than queue on a full fast one', () => {
    const s = scheduler();
    const fast = backend('f', measured(1), { metrics: load(8, 4), queueing: true });
    const slow = backend('s', measured(3), { metrics: load(2, 0) });
    const d = s.schedule(prompt(1), [fast, slow]);
    expect(d.kind === 'route' && d.primary.id).toBe('s');
    expect(d.kind === 'route' && d.why.predictedTtftS).toBeGreaterThan(0);
  });

  it('knows a server is full at the slots it has shown, without a configured capacity', () => {
    const s = scheduler();
    // Both have 6 running; one has shown it runs 6 at most, the other 32.
    const six = backend('a', measured(1), { capacity: 6, metrics: load(6, 0), inflight: 6 });
    const many = backend('b', measured(1), { capacity: 32, metrics: load(6, 0), inflight: 6 });
    const d = s.schedule(prompt(2), [six, many]);
    expect(d.kind === 'route' && d.primary.id).toBe('b');
  });

  it('prices a cache miss at the rate requests live a prefill there, and predicts with what a token adds to a step', () => {
    const s = scheduler();
    const system = 'You are a meticulous assistant. '.repeat(250); // ~2000 tokens
    const ask = (q: string): SchedulingRequest => ({ model: 'm', stream: true, prompt: { kind: 'text', bytes: Buffer.from(`${system}${q}`) } });
    const route = (contended: number, q: string) => {
      const rates = measured(1, { contendedPrefillPerTokenS: contended });
      const holder = backend('h', rates, { metrics: load(8, 1), queueing: true });
      const other = backend('o', rates, { metrics: load(2, 0) });
      const d = s.schedule(ask(q), [holder, other]);
      if (d.kind !== 'route') throw new Error(d.code);
      return d;
    };
    // 'h' holds the prompt: it was sent there while 'o' was busy.
    const first = s.schedule(ask('warm'), [backend('h', measured(1)), backend('o', measured(1), { metrics: load(8, 0) })]);
    expect(first.kind === 'route' && first.primary.id).toBe('h');
    // 'h' full with one waiting: at three times the marginal rate, as the server's requests
    // live a prefill, the queue behind the cache is cheaper; at the marginal rate (0.1 ms a
    // token) prefilling 2,000 tokens elsewhere is quicker than the slot.
    expect(route(0.0003, 'one').primary.id).toBe('h');
    expect(route(0.0001, 'two').primary.id).toBe('o');
    // The prediction is the marginal one whatever the price.
    const alone = (id: string, contended: number) => {
      const d = s.schedule(ask('three'), [backend(id, measured(1, { contendedPrefillPerTokenS: contended }))]);
      return d.kind === 'route' ? d.why.predictedTtftS : NaN;
    };
    expect(alone('x', 0.0003)).toBeCloseTo(alone('y', 0.0001), 9);
    expect(pricedSpeed({ ...PRIOR_SPEED, contendedPrefillPerTokenS: PRIOR_SPEED.prefillPerTokenS / 2 }).prefillPerTokenS).toBe(PRIOR_SPEED.prefillPerTokenS);
  });
});
