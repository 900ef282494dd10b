import { describe, expect, it } from 'vitest';
import { addStepSample, decayStepSamples, emptyStepSamples, fitStepTime } from './step-time-fit.js';

describe('step time fit', () => {
  it('recovers base, per-sequence and per-token costs when batch and prefill both vary', () => {
    const s = emptyStepSamples();
    for (let i = 0; i < 50; i++) {
      const batch = 1 + (i % 7);
      const tokens = [0, 64, 512, 2048][i % 4]!;
      addStepSample(s, batch, tokens, 0.006 + 0.00015 * batch + 0.00005 * tokens);
    }
    const fit = fitStepTime(s, 0.001, 0.5)!;
    expect(fit.baseS).toBeCloseTo(0.006, 4);
    expect(fit.perSequenceS).toBeCloseTo(0.00015, 4);
    expect(fit.perTokenS).toBeCloseTo(0.00005, 5);
  });

  it('leans on the priors where a regressor does not vary, and never goes negative', () => {
    const s = emptyStepSamples();
    for (let i = 0; i < 20; i++) addStepSample(s, 8, 0, 0.01);
    const fit = fitStepTime(s, 0.0001, 0.025)!;
    expect(fit.perTokenS).toBeCloseTo(0.0001, 8); // nothing prefilled: the prior stands
    expect(fit.perSequenceS).toBeCloseTo(0.025 * 0.01, 6);
    expect(fit.baseS + 8 * fit.perSequenceS).toBeCloseTo(0.01, 8);
    // Steps that got quicker as batches grew (noise): no negative slope, no negative base.
    const odd = emptyStepSamples();
    for (let i = 0; i < 20; i++) addStepSample(odd, 1 + (i % 4), 100 * (i % 3), 0.02 - 0.004 * (i % 4));
    const f = fitStepTime(odd, 0.0001, 0.025)!;
    expect(f.perSequenceS).toBeGreaterThanOrEqual(0);
    expect(f.perTokenS).toBeGreaterThanOrEqual(0);
    expect(f.baseS).toBeGreaterThanOrEqual(0);
  });

  it('says how much of the samples\' variance it explains: all of it for exact steps, little for noise', () => {
    const exact = emptyStepSamples();
    for (let i = 0; i < 30; i++) addStepSample(exact, 1 + (i % 5), 300 * (i % 4), 0.006 + 0.0002 * (1 + (i % 5)) + 0.00005 * 300 * (i % 4));
    expect(fitStepTime(exact, 0.0001, 0.025)!.explained).toBeGreaterThan(0.99);
    // Time per step unrelated to what the steps ran (another process's work between them).
    const noise = emptyStepSamples();
    for (let i = 0; i < 30; i++) addStepSample(noise, 1 + (i % 5), 300 * (i % 4), 0.005 + 0.02 * (((i * 7919) % 13) / 13));
    expect(fitStepTime(noise, 0.0001, 0.025)!.explained).toBeLessThan(0.5);
  });

  it('has nothing to say without samples, and forgets with decay', () => {
    expect(fitStepTime(emptyStepSamples(), 0.0001, 0.025)).toBeUndefined();
    const s = emptyStepSamples();
    addStepSample(s, 2, 0, 0.01);
    decayStepSamples(s, 0.5);
    expect(s.w).toBe(0.5);
    expect(fitStepTime(s, 0.0001, 0.025)!.baseS + 2 * fitStepTime(s, 0.0001, 0.025)!.perSequenceS).toBeCloseTo(0.01, 8);
  });
});
