import type { ServiceRates } from './backend.js';

/** Requests whose first token the server measured, per comparison with the predictions. */
const MIN_TTFT_SAMPLE = 40;

/**
 * A backend's time to first token as predicted (for the requests we sent) and as it measured
 * them, decayed like the other learned figures, and their mean absolute error compared over
 * windows of MIN_TTFT_SAMPLE measured requests (a scrape interval holds too few to compare).
 */
export interface TtftAccount {
  predictedS: number;
  predictions: number;
  measuredS: number;
  measured: number;
  errorSum: number;
  errorWeight: number;
  /** Predictions and measurements since the last comparison. */
  window: { predictedS: number; predictions: number; measuredS: number; measured: number };
}

const emptyWindow = (): TtftAccount['window'] => ({ predictedS: 0, predictions: 0, measuredS: 0, measured: 0 });

export function emptyTtftAccount(): TtftAccount {
  return { predictedS: 0, predictions: 0, measuredS: 0, measured: 0, errorSum: 0, errorWeight: 0, window: emptyWindow() };
}

export function decayTtftAccount(a: TtftAccount, decay: number): void {
  for (const key of ['predictedS', 'predictions', 'measuredS', 'measured', 'errorSum', 'errorWeight'] as const) a[key] *= decay;
}

/**
 * Folds in one interval: the first tokens the server measured (their histogram's delta) and
 * the predictions of the requests they were; sets the rates' predicted, measured and error.
 */
export function accountTtft(a: TtftAccount, rates: ServiceRates, measured: { sum: number; count: number } | undefined, predictions: { sumS: number; count: number }): void {
  const w = a.window;
  if (measured && measured.count > 0) {
    a.measuredS += measured.sum;
    a.measured += measured.count;
    rates.ttftMeasuredS = a.measuredS / a.measured;
    w.measuredS += measured.sum;
    w.measured += measured.count;
  }
  if (predictions.count > 0) {
    a.predictedS += predictions.sumS;
    a.predictions += predictions.count;
    rates.ttftPredictedS = a.predictedS / a.predictions;
    w.predictedS += predictions.sumS;
    w.predictions += predictions.count;
  }
  if (w.measured < MIN_TTFT_SAMPLE) return;
  const measuredMean = w.measuredS / w.measured;
  if (w.predictions > 0 && measuredMean > 0) {
    const predictedMean = w.predictedS / w.predictions;
    a.errorSum += Math.abs(predictedMean - measuredMean) / measuredMean;
    a.errorWeight += 1;
    rates.ttftError = a.errorSum / a.errorWeight;
  }
  a.window = emptyWindow();
}
