import type { ServiceRates } from './backend.js';
import type { SumCount, VllmLoad } from './vllm-metrics.js';

/**
 * How fast each backend serves, learned from its own /metrics between two scrapes: the engine
 * step time against the running batch (inter-token latency against the running gauge), the
 * prefill time per computed prompt token (prefill time beyond one step, over the tokens its
 * prefills computed, i.e. not found in its cache), how long a request holds a slot, how many
 * tokens requests generate, and how many requests it runs before others wait for capacity. Each
 * figure is a decayed average (half-life 30 s), so a backend that slows down or is replaced is
 * followed within a minute; a figure stays undefined until the backend has shown it.
 */
export interface ServiceRateLearner {
  /**
   * Folds in one good scrape, and the time to first token predicted for the requests whose
   * first token was due by the time it was read (their sum and count).
   */
  observe(rates: ServiceRates, metrics: VllmLoad, predictions: { sumS: number; count: number }, now?: number): void;
}

const HALF_LIFE_MS = 30_000;
/** Fewest inter-token gaps in an interval for its mean step time to count. */
const MIN_STEPS = 3;
/**
 * Ridge on the step-time slope, in squared sequences: with the batch barely varying (a server
 * always full, or always idle), the slope cannot be told apart from the base and is pulled
 * toward PRIOR_SLOPE_SHARE of the mean step (an 8B model on one GPU: +0.15 ms per sequence on a
 * 6 ms step), never toward a batch that costs nothing.
 */
const SLOPE_RIDGE = 0.25;
const PRIOR_SLOPE_SHARE = 0.025;
/** Fewest uncached prompt tokens before a prefill rate is trusted. */
const MIN_PREFILL_TOKENS = 64;
/** Requests whose first token the server measured, per comparison with the predictions. */
const MIN_TTFT_SAMPLE = 40;

interface Learning {
  last: VllmLoad;
  lastAt: number;
  /** Decayed weighted sums for step = base + perSequence * batch. */
  w: number;
  wn: number;
  wnn: number;
  wy: number;
  wny: number;
  prefillBeyondStepS: number;
  prefillTokens: number;
  prefills: number;
  holdS: number;
  holds: number;
  admitS: number;
  admits: number;
  queueS: number;
  queues: number;
  prefillS: number;
  generated: number;
  completed: number;
  predictedS: number;
  predictions: number;
  measuredS: number;
  measured: number;
  errorSum: number;
  errorWeight: number;
  /** Predictions and measurements since the last comparison. */
  window: { predictedS: number; predictions: number; measuredS: number; measured: number };
  /** Requests were waiting for capacity at the last scrape. */
  waitedForCapacity: boolean;
  /** The largest batch it has run (this process). */
  largestBatch: number;
}

export function emptyServiceRates(): ServiceRates {
  return {
    stepBaseS: undefined,
    stepPerSequenceS: undefined,
    prefillPerTokenS: undefined,
    slotHoldS: undefined,
    admissionS: undefined,
    frontEndS: undefined,
    outputTokens: undefined,
    slots: undefined,
    measuredRequests: 0,
    ttftPredictedS: undefined,
    ttftMeasuredS: undefined,
    ttftError: undefined,
  };
}

/** What a histogram gained between two scrapes; nothing if it went back (the server restarted). */
const delta = (now: SumCount | undefined, before: SumCount | undefined) =>
  now && before && now.count >= before.count && now.sum >= before.sum ? { sum: now.sum - before.sum, count: now.count - before.count } : undefined;

const counterDelta = (now: number | undefined, before: number | undefined) =>
  now !== undefined && before !== undefined && now >= before ? now - before : undefined;

export function createServiceRateLearner(): ServiceRateLearner {
  const learning = new WeakMap<ServiceRates, Learning>();

  function fresh(metrics: VllmLoad, now: number): Learning {
    return {
      last: metrics, lastAt: now, w: 0, wn: 0, wnn: 0, wy: 0, wny: 0, prefillBeyondStepS: 0, prefillTokens: 0, prefills: 0, holdS: 0, holds: 0, admitS: 0, admits: 0, queueS: 0, queues: 0, prefillS: 0,
      generated: 0, completed: 0, predictedS: 0, predictions: 0, measuredS: 0, measured: 0,
      errorSum: 0, errorWeight: 0, window: { predictedS: 0, predictions: 0, measuredS: 0, measured: 0 }, waitedForCapacity: false, largestBatch: metrics.running,
    };
  }

  return {
    observe(rates, metrics, predictions, now = Date.now()) {
      const l = learning.get(rates);
      // A server whose request counter went back has restarted: a new process, learned afresh
      // (until then its peers' figures stand in for its own).
      const restarted = l && counterDelta(metrics.requestsCompleted, l.last.requestsCompleted) === undefined && metrics.requestsCompleted !== undefined;
      if (!l || restarted) {
        if (restarted) Object.assign(rates, emptyServiceRates());
        learning.set(rates, fresh(metrics, now));
        return;
      }
      const before = l.last;
      const decay = 0.5 ** (Math.max(0, now - l.lastAt) / HALF_LIFE_MS);
      for (const key of ['w', 'wn', 'wnn', 'wy', 'wny', 'prefillBeyondStepS', 'prefillTokens', 'prefills', 'holdS', 'holds', 'admitS', 'admits', 'queueS', 'queues', 'prefillS', 'generated', 'completed', 'predictedS', 'predictions', 'measuredS', 'measured', 'errorSum', 'errorWeight'] as const) {
        l[key] *= decay;
      }
      rates.measuredRequests = l.prefills;

      // Step time against the batch it ran: the mean running gauge over the interval.
      const h = metrics.histograms;
      const hBefore = before.histograms;
      const n = Math.max(1, (metrics.running + before.running) / 2);
      const steps = delta(h.interToken, hBefore.interToken);
      if (steps && steps.count >= MIN_STEPS) {
        const y = steps.sum / steps.count;
        l.w += 1;
        l.wn += n;
        l.wnn += n * n;
        l.wy += y;
        l.wny += n * y;
        fitStep(rates, l);
      }

      // Prefill beyond the one step every request's first token takes, per computed token: both
      // observed as the same requests finish (vLLM 0.11+), else the counters, which count
      // prompt tokens at prefill, not at finish, and so agree only over many requests.
      const prefill = delta(h.prefill, hBefore.prefill);
      const computed = delta(h.prefillComputedTokens, hBefore.prefillComputedTokens)?.sum ?? uncachedPromptTokens(metrics, before);
      if (prefill && prefill.count > 0 && computed !== undefined) {
        const step = (rates.stepBaseS ?? 0) + (rates.stepPerSequenceS ?? 0) * n;
        l.prefillBeyondStepS += Math.max(0, prefill.sum - prefill.count * step);
        l.prefillS += prefill.sum;
        l.prefillTokens += computed;
        l.prefills += prefill.count;
        rates.measuredRequests = l.prefills;
        if (l.prefillTokens >= MIN_PREFILL_TOKENS) rates.prefillPerTokenS = l.prefillBeyondStepS / l.prefillTokens;
      }

      // Queue time while nobody waited for capacity: the wait for the engine step in progress.
      const queued = delta(h.queue, hBefore.queue);
      if (queued) {
        l.queueS += queued.sum;
        l.queues += queued.count;
      }
      if (queued && queued.count > 0 && metrics.waiting === 0 && before.waiting === 0) {
        l.admitS += queued.sum;
        l.admits += queued.count;
        rates.admissionS = l.admitS / l.admits;
      }

      const holds = delta(h.inference, hBefore.inference);
      if (holds && holds.count > 0) {
        l.holdS += holds.sum;
        l.holds += holds.count;
        rates.slotHoldS = l.holdS / l.holds;
      }

      const outputs = delta(h.generationTokens, hBefore.generationTokens) ?? {
        sum: counterDelta(metrics.generationTokensTotal, before.generationTokensTotal),
        count: counterDelta(metrics.requestsCompleted, before.requestsCompleted),
      };
      if (outputs.sum !== undefined && outputs.count) {
        l.generated += outputs.sum;
        l.completed += outputs.count;
        rates.outputTokens = l.generated / l.completed;
      }

      // Requests waiting for capacity in two scrapes running: it runs all it can, and its slots
      // are the largest batch it has run. (One scrape's queue may be a request that arrived
      // just before the next engine step.) Not the batch of that scrape: a step's finishes
      // leave it short until the next step admits the waiting, and a request can wait for the
      // step's token budget with a slot free; learned too low, slots would stay so where
      // nothing is sent beyond them (flow control). A queue from a lack of KV blocks shows as
      // one (waiting), not as fewer slots.
      l.largestBatch = Math.max(l.largestBatch, metrics.running);
      const waitingForCapacity = (metrics.waitingForCapacity ?? metrics.waiting) > 0;
      if ((waitingForCapacity && l.waitedForCapacity && metrics.running > 0) || rates.slots !== undefined) rates.slots = l.largestBatch;
      l.waitedForCapacity = waitingForCapacity;

      // Predicted against measured time to first token, over windows of MIN_TTFT_SAMPLE
      // measured requests (a scrape interval holds too few to compare).
      const ttft = delta(h.ttft, hBefore.ttft);
      const w = l.window;
      if (ttft && ttft.count > 0) {
        l.measuredS += ttft.sum;
        l.measured += ttft.count;
        rates.ttftMeasuredS = l.measuredS / l.measured;
        w.measuredS += ttft.sum;
        w.measured += ttft.count;
      }
      if (predictions.count > 0) {
        l.predictedS += predictions.sumS;
        l.predictions += predictions.count;
        rates.ttftPredictedS = l.predictedS / l.predictions;
        w.predictedS += predictions.sumS;
        w.predictions += predictions.count;
      }
      // What its TTFT holds beyond the engine's queue and prefill: the API server's own work.
      if (l.measured > 0 && l.queues > 0 && l.prefills > 0) {
        rates.frontEndS = Math.max(0, l.measuredS / l.measured - l.queueS / l.queues - l.prefillS / l.prefills);
      }
      if (w.measured >= MIN_TTFT_SAMPLE) {
        const measuredMean = w.measuredS / w.measured;
        if (w.predictions > 0 && measuredMean > 0) {
          const predictedMean = w.predictedS / w.predictions;
          l.errorSum += Math.abs(predictedMean - measuredMean) / measuredMean;
          l.errorWeight += 1;
          rates.ttftError = l.errorSum / l.errorWeight;
        }
        l.window = { predictedS: 0, predictions: 0, measuredS: 0, measured: 0 };
      }
      l.last = metrics;
      l.lastAt = now;
    },
  };
}

/** Prompt tokens not served from the prefix cache, from the counters. */
function uncachedPromptTokens(now: VllmLoad, before: VllmLoad): number | undefined {
  const prompt = counterDelta(now.promptTokensTotal, before.promptTokensTotal);
  return prompt === undefined ? undefined : Math.max(0, prompt - (counterDelta(now.prefixCacheHits, before.prefixCacheHits) ?? 0));
}

/** Ridge regression of step time on batch size over the decayed samples; neither part negative. */
function fitStep(rates: ServiceRates, l: Learning): void {
  const meanN = l.wn / l.w;
  const meanY = l.wy / l.w;
  const variance = Math.max(0, l.wnn / l.w - meanN * meanN);
  const covariance = l.wny / l.w - meanN * meanY;
  const slope = Math.max(0, (covariance + SLOPE_RIDGE * PRIOR_SLOPE_SHARE * meanY) / (variance + SLOPE_RIDGE));
  const perSequence = Math.min(slope, meanY / meanN);
  rates.stepPerSequenceS = perSequence;
  rates.stepBaseS = meanY - perSequence * meanN;
}
