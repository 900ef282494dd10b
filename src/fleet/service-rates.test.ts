import { describe, expect, it } from 'vitest';
import { capacityOf, DEFAULT_CAPACITY } from './backend.js';
import { createServiceRateLearner, emptyServiceRates } from './service-rates.js';
import type { VllmLoad } from './vllm-metrics.js';

/**
 * A server whose step takes base + perSeq * batch and whose prefill takes one step plus perToken
 * per uncached token; with `stepsPerInterval`, it reports its steps (vllm:iteration_tokens_total).
 */
function simulatedServer(base: number, perSeq: number, perToken: number, stepsPerInterval?: number) {
  const page: VllmLoad = {
    running: 0, waiting: 0, kvCacheUsage: 0, prefixCacheQueries: 0, prefixCacheHits: 0, promptTokensTotal: 0, requestsCompleted: 0,
    generationTokensTotal: 0, waitingForCapacity: 0, blockSize: 16, numGpuBlocks: 1000, modelNames: ['m'], lora: undefined,
    stepTokenBuckets: undefined,
    histograms: {
      ttft: { sum: 0, count: 0 }, interToken: { sum: 0, count: 0 }, queue: { sum: 0, count: 0 }, prefill: { sum: 0, count: 0 }, inference: { sum: 0, count: 0 },
      prefillComputedTokens: { sum: 0, count: 0 }, promptTokens: undefined, generationTokens: { sum: 0, count: 0 },
      iterationTokens: stepsPerInterval === undefined ? undefined : { sum: 0, count: 0 },
    },
  };
  return {
    /** One interval: `batch` sequences running, `requests` arriving with `prompt` tokens of which `cached` hit, each generating `output`. */
    interval(batch: number, requests: number, prompt: number, cached: number, output: number, waitingForCapacity = 0, queueS = 0): VllmLoad {
      const step = base + perSeq * batch;
      const prefillS = step + perToken * (prompt - cached);
      const t = page.histograms;
      const next: VllmLoad = {
        ...page,
        running: batch,
        waiting: waitingForCapacity,
        waitingForCapacity,
        promptTokensTotal: page.promptTokensTotal! + requests * prompt,
        prefixCacheHits: page.prefixCacheHits! + requests * cached,
        requestsCompleted: page.requestsCompleted! + requests,
        generationTokensTotal: page.generationTokensTotal! + requests * output,
        histograms: {
          ttft: { sum: t.ttft!.sum + requests * prefillS, count: t.ttft!.count + requests },
          interToken: { sum: t.interToken!.sum + requests * (output - 1) * step, count: t.interToken!.count + requests * (output - 1) },
          queue: { sum: t.queue!.sum + requests * queueS, count: t.queue!.count + requests },
          prefill: { sum: t.prefill!.sum + requests * prefillS, count: t.prefill!.count + requests },
          inference: { sum: t.inference!.sum + requests * (prefillS + (output - 1) * step), count: t.inference!.count + requests },
          prefillComputedTokens: { sum: t.prefillComputedTokens!.sum + requests * (prompt - cached), count: t.prefillComputedTokens!.count + requests },
          promptTokens: undefined,
          generationTokens: { sum: t.generationTokens!.sum + requests * output, count: t.generationTokens!.count + requests },
          iterationTokens: t.iterationTokens && { sum: t.iterationTokens.sum + stepsPerInterval! * batch, count: t.iterationTokens.count + stepsPerInterval! },
        },
      };
      Object.assign(page, next);
      return next;
    },
  };
}

const none = { sumS: 0, count: 0 };

describe('service rates learned from a backend\'s metrics', () => {
  it('learns step time against batch size, prefill per uncached token, slot hold and output length', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const server = simulatedServer(0.02, 0.005, 0.0001);
    let now = 0;
    learner.observe(rates, server.interval(0, 0, 0, 0, 0), none, now);
    for (let i = 0; i < 40; i++) learner.observe(rates, server.interval(1 + (i % 6), 3, 1000, 200 * (i % 3), 20), none, (now += 200));
    // The batch of an interval is read from the gauges at its two ends, and the slope is
    // shrunk a little toward 0: close, not exact.
    expect(rates.stepBaseS! / 0.02).toBeGreaterThan(0.8);
    expect(rates.stepBaseS! / 0.02).toBeLessThan(1.2);
    expect(rates.stepPerSequenceS! / 0.005).toBeGreaterThan(0.8);
    expect(rates.stepPerSequenceS! / 0.005).toBeLessThan(1.2);
    expect(rates.prefillPerTokenS! / 0.0001).toBeCloseTo(1, 1);
    // Without steps reported, the rate a request lives is the only one there is.
    expect(rates.contendedPrefillPerTokenS).toBe(rates.prefillPerTokenS);
    expect(rates.outputTokens).toBeCloseTo(20, 6);
    expect(rates.slotHoldS).toBeGreaterThan(0.02 * 19);
    expect(rates.slots).toBeUndefined();
  });

  it('prices a prefilled token by how much longer busy steps take, where the server reports its steps', () => {
    // Steps of 6 ms + 0.15 ms per decoding request + 0.05 ms per prefilled token, back to back;
    // each interval runs 20 steps with a batch of 2-7 and prefills of 0-1,000 tokens a step.
    const [base, perSeq, perToken] = [0.006, 0.00015, 0.00005];
    // `noisy` intervals more, timed with idle gaps the steps do not explain (as on a shared core).
    const learn = (withSteps: boolean, prefillReported = 1, noisy = 0) => {
      const learner = createServiceRateLearner();
      const rates = emptyServiceRates();
      const h = { ttft: { sum: 0, count: 0 }, interToken: { sum: 0, count: 0 }, iterationTokens: { sum: 0, count: 0 }, prefill: { sum: 0, count: 0 }, prefillComputedTokens: { sum: 0, count: 0 } };
      let generated = 0;
      const page = (batch: number): VllmLoad => ({
        running: batch, waiting: 0, kvCacheUsage: 0, prefixCacheQueries: 0, prefixCacheHits: 0, promptTokensTotal: 0, requestsCompleted: 0,
        generationTokensTotal: generated, waitingForCapacity: 0, blockSize: 16, numGpuBlocks: 1000, modelNames: ['m'], lora: undefined,
        stepTokenBuckets: undefined,
        histograms: {
          ttft: { ...h.ttft }, interToken: { ...h.interToken }, queue: undefined, prefill: { ...h.prefill }, inference: undefined,
          prefillComputedTokens: { ...h.prefillComputedTokens }, promptTokens: undefined, generationTokens: undefined, iterationTokens: withSteps ? { ...h.iterationTokens } : undefined,
        },
      });
      let now = 0;
      learner.observe(rates, page(2), none, now);
      for (let i = 1; i <= 120 + noisy; i++) {
        const batch = 2 + (i % 6);
        const prefilled = [0, 200, 1000, 500][i % 4]!;
        const step = base + perSeq * batch + perToken * prefilled;
        const steps = 20;
        const firsts = prefilled > 0 ? 2 : 0; // two 10-step prefills finish with a first token
        h.interToken.sum += steps * batch * step;
        h.interToken.count += steps * batch;
        h.iterationTokens.sum += steps * (batch + prefilled);
        h.iterationTokens.count += steps;
        h.ttft.sum += firsts * 10 * step;
        h.ttft.count += firsts;
        h.prefill.sum += prefillReported * firsts * 10 * step;
        h.prefill.count += firsts;
        h.prefillComputedTokens.sum += steps * prefilled;
        h.prefillComputedTokens.count += firsts;
        generated += steps * batch + firsts;
        now += steps * step * 1000 + (i > 120 ? [0, 4000, 0, 2000, 8000][i % 5]! : 0);
        learner.observe(rates, page(batch), none, now);
      }
      return rates;
    };
    // Each busy stretch of a second or more averages a few intervals' steps, so the batch and
    // the prefill vary less than the steps did: close, not exact.
    const rates = learn(true);
    expect(rates.stepBaseS! / base).toBeGreaterThan(0.9);
    expect(rates.stepBaseS! / base).toBeLessThan(1.1);
    expect(rates.stepPerSequenceS! / perSeq).toBeGreaterThan(0.7);
    expect(rates.stepPerSequenceS! / perSeq).toBeLessThan(1.3);
    expect(rates.prefillPerTokenS! / perToken).toBeGreaterThan(0.95);
    expect(rates.prefillPerTokenS! / perToken).toBeLessThan(1.05);
    // A request's prefill spans steps that also run the others' decodes: it lives a dearer
    // token than a step pays for one, kept apart as the routing price.
    expect(rates.contendedPrefillPerTokenS! / perToken).toBeGreaterThan(1.05);
    // A request cannot live its prefill quicker than its tokens add to the steps: where the
    // two disagree so, the fit is not believed beyond the lived rate.
    const quickPrefills = learn(true, 0.5);
    expect(quickPrefills.prefillPerTokenS!).toBeLessThanOrEqual(quickPrefills.contendedPrefillPerTokenS!);
    expect(quickPrefills.prefillPerTokenS! / perToken).toBeLessThan(0.8);
    // A stretch the fit cannot explain (idle gaps between steps) keeps the figures of the last
    // fit that did, rather than flip to the inter-token fit and the lived rate and back.
    const thenNoisy = learn(true, 1, 6);
    expect(thenNoisy.prefillPerTokenS! / perToken).toBeGreaterThan(0.95);
    expect(thenNoisy.prefillPerTokenS! / perToken).toBeLessThan(1.05);
    expect(thenNoisy.stepBaseS! / base).toBeLessThan(1.1);
    // For half a minute: then the figures are what the server shows now.
    const longNoisy = learn(true, 1, 20);
    expect(longNoisy.prefillPerTokenS).toBe(longNoisy.contendedPrefillPerTokenS);
    // Without its steps reported, the base holds the average prefill (425 tokens: +21 ms).
    const batchOnly = learn(false);
    expect(batchOnly.stepBaseS!).toBeGreaterThan(3 * base);
  });

  it('falls back to the prompt and cache-hit counters where vLLM has no computed-token histogram', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const server = simulatedServer(0.02, 0, 0.0002);
    const withoutHistogram = (page: VllmLoad): VllmLoad => ({ ...page, histograms: { ...page.histograms, prefillComputedTokens: undefined } });
    learner.observe(rates, withoutHistogram(server.interval(0, 0, 0, 0, 0)), none, 0);
    for (let i = 1; i <= 10; i++) learner.observe(rates, withoutHistogram(server.interval(2, 2, 800, 300, 10)), none, i * 200);
    expect(rates.prefillPerTokenS! / 0.0002).toBeCloseTo(1, 1);
    expect(rates.measuredRequests).toBeGreaterThan(15);
  });

  it('takes the batch it runs while requests wait for capacity, in two scrapes running, as its slots', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const server = simulatedServer(0.02, 0, 0.0001);
    learner.observe(rates, server.interval(0, 0, 0, 0, 0), none, 0);
    learner.observe(rates, server.interval(8, 2, 100, 0, 10, 3), none, 200);
    expect(rates.slots).toBeUndefined(); // one scrape's queue may be a request that just arrived
    learner.observe(rates, server.interval(8, 2, 100, 0, 10, 2), none, 400);
    expect(rates.slots).toBe(8);
    // Read just after a step that finished two: their replacements wait for the next step.
    const fresh = emptyServiceRates();
    learner.observe(fresh, server.interval(0, 0, 0, 0, 0), none, 0);
    learner.observe(fresh, server.interval(8, 2, 100, 0, 10, 1), none, 200);
    learner.observe(fresh, server.interval(6, 2, 100, 0, 10, 2), none, 400);
    expect(fresh.slots).toBe(8);
    // A request waiting for the step's token budget with a slot free does not shrink them.
    learner.observe(rates, server.interval(5, 2, 100, 0, 10, 1), none, 600);
    expect(rates.slots).toBe(8);
    learner.observe(rates, server.interval(10, 2, 100, 0, 10), none, 800);
    expect(rates.slots).toBe(10); // it ran more than that: it has more
  });

  it('takes the queue time of intervals it had room in as the wait for the step in progress, not of those it was full in', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const server = simulatedServer(0.02, 0, 0.0001);
    learner.observe(rates, server.interval(0, 0, 0, 0, 0), none, 0);
    learner.observe(rates, server.interval(8, 2, 100, 0, 10, 2, 0.1), none, 200);
    learner.observe(rates, server.interval(8, 2, 100, 0, 10, 1, 0.1), none, 400);
    expect(rates.slots).toBe(8);
    // Full at both scrapes, nobody waiting when read: arrivals between waited for a slot.
    for (let i = 3; i < 10; i++) learner.observe(rates, server.interval(8, 2, 100, 0, 10, 0, 0.05), none, i * 200);
    expect(rates.admissionS).toBeUndefined();
    for (let i = 10; i < 20; i++) learner.observe(rates, server.interval(5, 2, 100, 0, 10, 0, 0.004), none, i * 200);
    expect(rates.admissionS).toBeCloseTo(0.004, 6);
  });

  it('counts at most twice the mean step of an interval as its wait for the step in progress', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    // Ten steps in each 200 ms interval: 20 ms a step. Room at both scrapes, yet 150 ms queued
    // on average: it filled in between, and the excess was a wait for a slot.
    const server = simulatedServer(0.02, 0, 0.0001, 10);
    learner.observe(rates, server.interval(0, 0, 0, 0, 0), none, 0);
    for (let i = 1; i < 10; i++) learner.observe(rates, server.interval(5, 2, 100, 0, 10, 0, 0.15), none, i * 200);
    expect(rates.admissionS).toBeCloseTo(0.04, 6);
    for (let i = 10; i < 20; i++) learner.observe(rates, server.interval(5, 2, 100, 0, 10, 0, 0.004), none, i * 200);
    expect(rates.admissionS).toBeLessThan(0.04);
  });

  it('measures its own predictions against the time to first token the server reports', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const server = simulatedServer(0.02, 0, 0.0001);
    learner.observe(rates, server.interval(0, 0, 0, 0, 0), none, 0);
    // TTFT is 0.02 + 0.1 = 0.12 s; predicted 0.09 s: 25 % off (compared every 40 measured requests).
    for (let i = 1; i <= 9; i++) learner.observe(rates, server.interval(2, 4, 1000, 0, 10), { sumS: 4 * 0.09, count: 4 }, i * 200);
    expect(rates.ttftError).toBeUndefined();
    for (let i = 10; i <= 20; i++) learner.observe(rates, server.interval(2, 4, 1000, 0, 10), { sumS: 4 * 0.09, count: 4 }, i * 200);
    expect(rates.ttftMeasuredS).toBeCloseTo(0.12, 6);
    expect(rates.ttftPredictedS).toBeCloseTo(0.09, 6);
    expect(rates.ttftError).toBeCloseTo(0.25, 6);
  });

  it('forgets old figures: a backend that slows down is followed', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const fast = simulatedServer(0.01, 0, 0.0001);
    let now = 0;
    learner.observe(rates, fast.interval(0, 0, 0, 0, 0), none, now);
    for (let i = 0; i < 20; i++) learner.observe(rates, fast.interval(2, 2, 500, 0, 10), none, (now += 200));
    // Always two running: only the step at that batch is told.
    const stepAtTwo = () => rates.stepBaseS! + 2 * rates.stepPerSequenceS!;
    expect(stepAtTwo() / 0.01).toBeCloseTo(1, 2);
    // The same counters go on, three times slower, for two minutes.
    const pageBefore = fast.interval(2, 0, 0, 0, 1);
    learner.observe(rates, pageBefore, none, (now += 200));
    let page = pageBefore;
    for (let i = 0; i < 600; i++) {
      const steps = 2 * 9;
      const t = page.histograms;
      page = {
        ...page,
        promptTokensTotal: page.promptTokensTotal! + 1000,
        requestsCompleted: page.requestsCompleted! + 2,
        generationTokensTotal: page.generationTokensTotal! + 20,
        histograms: {
          ...t,
          interToken: { sum: t.interToken!.sum + steps * 0.03, count: t.interToken!.count + steps },
          prefill: { sum: t.prefill!.sum + 2 * (0.03 + 500 * 0.0003), count: t.prefill!.count + 2 },
          prefillComputedTokens: { sum: t.prefillComputedTokens!.sum + 1000, count: t.prefillComputedTokens!.count + 2 },
        },
      };
      learner.observe(rates, page, none, (now += 200));
    }
    expect(stepAtTwo() / 0.03).toBeCloseTo(1, 2);
    expect(rates.prefillPerTokenS).toBeCloseTo(0.0003, 5);
  });
});

describe('capacity', () => {
  it('is the configured one if given, else the slots the backend showed, else the default', () => {
    const shown = { ...emptyServiceRates(), slots: 8 };
    expect(capacityOf({ capacityOverride: 16, rates: shown })).toBe(16);
    expect(capacityOf({ capacityOverride: undefined, rates: shown })).toBe(8);
    expect(capacityOf({ capacityOverride: undefined, rates: emptyServiceRates() })).toBe(DEFAULT_CAPACITY);
  });
});

describe('a backend that restarts or goes quiet', () => {
  it('forgets what it learned when its counters go back (a new process), and trusts old figures less as they age', () => {
    const learner = createServiceRateLearner();
    const rates = emptyServiceRates();
    const server = simulatedServer(0.02, 0, 0.0001);
    learner.observe(rates, server.interval(0, 0, 0, 0, 0), none, 0);
    for (let i = 1; i <= 10; i++) learner.observe(rates, server.interval(2, 4, 1000, 0, 10), none, i * 200);
    const measured = rates.measuredRequests;
    expect(measured).toBeGreaterThan(30);
    // Idle for a minute: the figures stay, the evidence behind them decays.
    const idle = server.interval(0, 0, 0, 0, 0);
    learner.observe(rates, idle, none, 2000 + 60_000);
    expect(rates.prefillPerTokenS).toBeDefined();
    expect(rates.measuredRequests).toBeLessThan(measured / 3);
    // Restarted: counters from zero.
    learner.observe(rates, simulatedServer(0.02, 0, 0.0001).interval(0, 0, 0, 0, 0), none, 70_000);
    expect(rates.prefillPerTokenS).toBeUndefined();
    expect(rates.measuredRequests).toBe(0);
  });
});
