import type { ServiceRates } from './backend.js';
import { addStepSample, decayStepSamples, emptyStepSamples, fitStepTime, type StepFit, type StepSamples } from './step-time-fit.js';
import { accountTtft, decayTtftAccount, emptyTtftAccount, type TtftAccount } from './prediction-accuracy.js';
import { counterDelta, delta, prefillSteps, uncachedPromptTokens, type VllmLoad } from './vllm-metrics.js';

/**
 * How fast each backend serves, learned from its own /metrics between two scrapes: the engine
 * step time against the decodes and prompt tokens each step ran (busy time over the steps it
 * reports), the slope on prompt tokens being the prefill time per computed (uncached) token;
 * how long a request holds a slot, how many
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
 * Where the batch or the prefill barely varies, the step-time slopes are pulled toward
 * PRIOR_SLOPE_SHARE of the mean step per sequence (an 8B model on one GPU: +0.15 ms per
 * sequence on a 6 ms step) and toward the prefill histogram's rate per token (else
 * PRIOR_TOKEN_SHARE of the step: 0.05 ms a token on a 6 ms step).
 */
const PRIOR_SLOPE_SHARE = 0.025;
const PRIOR_TOKEN_SHARE = 1 / 120;
/** Busy intervals (decayed) before their fit replaces the inter-token one. */
const MIN_BUSY_SAMPLES = 2;
/**
 * Share of the busy intervals' variance their fit must explain to be used. On a server whose
 * time between scrapes is not its steps' (real vLLM on a shared CPU core: the API server's work
 * and the scrapes themselves come between steps) the fit is noise, and a prefill priced at
 * nothing on one server draws every request there.
 */
const MIN_EXPLAINED = 0.5;
/** Fewest uncached prompt tokens before a prefill rate is trusted. */
const MIN_PREFILL_TOKENS = 64;

interface Learning {
  last: VllmLoad;
  lastAt: number;
  /** Inter-token gaps against the running gauges: steps timed where the server does not report them. */
  gaps: StepSamples;
  /** Busy time over the steps it reports, against their decodes and prefilled tokens. */
  busy: StepSamples;
  /** Busy intervals since the last busy sample, too few steps to make one yet. */
  stretch: BusyStretch;
  /** The last busy-time fit that explained its samples, and when. */
  goodBusyFit: { fit: StepFit; at: number } | undefined;
  prefillBeyondStepS: number;
  prefillTokens: number;
  prefills: number;
  /** Steps that prefilled, and the prefills counted while they were (both where the steps are reported). */
  prefillSteps: number;
  prefillsInSteps: number;
  holdS: number;
  holds: number;
  admitS: number;
  admits: number;
  queueS: number;
  queues: number;
  prefillS: number;
  generated: number;
  completed: number;
  ttft: TtftAccount;
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
    contendedPrefillPerTokenS: undefined,
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

export function createServiceRateLearner(): ServiceRateLearner {
  const learning = new WeakMap<ServiceRates, Learning>();

  function fresh(metrics: VllmLoad, now: number): Learning {
    return {
      last: metrics, lastAt: now, gaps: emptyStepSamples(), busy: emptyStepSamples(), stretch: noStretch(), goodBusyFit: undefined, prefillBeyondStepS: 0, prefillTokens: 0, prefills: 0, prefillSteps: 0, prefillsInSteps: 0, holdS: 0, holds: 0, admitS: 0, admits: 0, queueS: 0, queues: 0, prefillS: 0,
      generated: 0, completed: 0, ttft: emptyTtftAccount(), waitedForCapacity: false, largestBatch: metrics.running,
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
      decayStepSamples(l.gaps, decay);
      decayStepSamples(l.busy, decay);
      for (const key of ['prefillBeyondStepS', 'prefillTokens', 'prefills', 'prefillSteps', 'prefillsInSteps', 'holdS', 'holds', 'admitS', 'admits', 'queueS', 'queues', 'prefillS', 'generated', 'completed'] as const) {
        l[key] *= decay;
      }
      decayTtftAccount(l.ttft, decay);
      rates.measuredRequests = l.prefills;

      // Step time, from inter-token gaps against the batch at the interval's two ends. Steps
      // carrying prefill are long gaps, so its base holds the workload's average prefill (which
      // the time model counts again on top): the busy-time fit replaces it where it can.
      const h = metrics.histograms;
      const hBefore = before.histograms;
      const n = Math.max(1, (metrics.running + before.running) / 2);
      const gaps = delta(h.interToken, hBefore.interToken);
      if (gaps && gaps.count >= MIN_STEPS) addStepSample(l.gaps, n, 0, gaps.sum / gaps.count);
      observeBusySteps(l, metrics, before, now - l.lastAt);

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
      }
      const steps = prefillSteps(metrics, before, Math.max(l.largestBatch, metrics.running, before.running));
      if (steps !== undefined) {
        l.prefillSteps += steps;
        l.prefillsInSteps += prefill?.count ?? 0;
      }
      const lived = livedPrefillRate(l);
      const perToken = lived === undefined ? undefined : lived / coPrefills(l);
      if (lived !== undefined) {
        rates.contendedPrefillPerTokenS = lived;
        rates.prefillPerTokenS = perToken;
      }
      fitSteps(rates, l, now, lived, perToken);

      // Queue time while it had room (nobody waiting, a slot free, at both scrapes): the wait
      // for the engine step in progress. Where it filled up between them, the queue time holds
      // waits for a slot, which the time model counts apart.
      const queued = delta(h.queue, hBefore.queue);
      if (queued) {
        l.queueS += queued.sum;
        l.queues += queued.count;
      }
      // Rooms at both scrapes can still fill in between: a request's wait for the step in
      // progress is at most about that step, so where the steps are reported an interval's
      // mean counts up to twice its mean step (a step mixing prefill is longer than the mean;
      // measured uncapped, a server at the centre of shared prompts learned a 150 ms wait for
      // 7 ms steps, predicted its cached requests' first tokens at 5x their time).
      const hadRoom = (m: VllmLoad) => m.waiting === 0 && (rates.slots === undefined || m.running < rates.slots);
      if (queued && queued.count > 0 && hadRoom(metrics) && hadRoom(before)) {
        const steps = delta(h.iterationTokens, hBefore.iterationTokens)?.count;
        const stepS = steps ? (now - l.lastAt) / 1000 / steps : Infinity;
        l.admitS += Math.min(queued.sum, queued.count * 2 * stepS);
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

      accountTtft(l.ttft, rates, delta(h.ttft, hBefore.ttft), predictions);
      // What its TTFT holds beyond the engine's queue and prefill: the API server's own work.
      const t = l.ttft;
      if (t.measured > 0 && l.queues > 0 && l.prefills > 0) {
        rates.frontEndS = Math.max(0, t.measuredS / t.measured - l.queueS / l.queues - l.prefillS / l.prefills);
      }
      l.last = metrics;
      l.lastAt = now;
    },
  };
}

interface BusyStretch {
  ms: number;
  steps: number;
  decodes: number;
  prefilled: number;
}

const noStretch = (): BusyStretch => ({ ms: 0, steps: 0, decodes: 0, prefilled: 0 });

/**
 * Between scrapes that all found requests running (the engine stepping without a pause, but
 * for an arrival just after a finish), where the server reports its steps
 * (vllm:iteration_tokens_total: its count is the steps, its sum their scheduled tokens): the
 * time per step against what a step ran, one decode per running request (every generated token
 * but a request's first) and prefill for the rest. Consecutive intervals are pooled until they
 * hold MIN_STEPS steps (dropping intervals with fewer would drop the long, prefilling steps).
 * A step in progress at a scrape is timed partly in one sample and counted in the next; over
 * samples that evens out.
 */
function observeBusySteps(l: Learning, metrics: VllmLoad, before: VllmLoad, elapsedMs: number): void {
  const steps = delta(metrics.histograms.iterationTokens, before.histograms.iterationTokens);
  const generated = counterDelta(metrics.generationTokensTotal, before.generationTokensTotal);
  if (!steps || generated === undefined || before.running === 0 || metrics.running === 0) {
    l.stretch = noStretch();
    return;
  }
  const decodes = Math.max(0, generated - (delta(metrics.histograms.ttft, before.histograms.ttft)?.count ?? 0));
  const s = l.stretch;
  s.ms += elapsedMs;
  s.steps += steps.count;
  s.decodes += decodes;
  s.prefilled += Math.max(0, steps.sum - decodes);
  if (s.steps < MIN_STEPS) return;
  addStepSample(l.busy, s.decodes / s.steps, s.prefilled / s.steps, s.ms / 1000 / s.steps);
  l.stretch = noStretch();
}

/**
 * A busy-time fit that explained its samples stands for this long after the samples stop
 * doing so (a stretch of steps alike leaves little variance to explain): falling back at once
 * to the inter-token fit and the lived prefill rate left one simulated server at 0.10 ms a
 * token where its steps take 0.05, its first tokens predicted at twice their time.
 */
const GOOD_FIT_HOLD_MS = HALF_LIFE_MS;

/** Prefill time beyond one step per computed token, as requests live it (with whatever shares their steps). */
const livedPrefillRate = (l: Learning) => (l.prefillTokens >= MIN_PREFILL_TOKENS ? l.prefillBeyondStepS / l.prefillTokens : undefined);

/**
 * Requests prefilled per step that prefilled, at least 1: requests sent together are
 * prefilled in one step, each living the whole step's prefill (the turns of many chat
 * sessions arrive within milliseconds; five prefilled together live five times the per-token
 * time). The lived rate over it is what a token adds to a step. 1 where steps are not reported.
 */
const coPrefills = (l: Learning) => (l.prefillSteps > 0 ? Math.max(1, l.prefillsInSteps / l.prefillSteps) : 1);

/** The step figures: from busy time where there is enough, else inter-token gaps (prefill rates as lived, and per step's token). */
function fitSteps(rates: ServiceRates, l: Learning, now: number, lived: number | undefined, perToken: number | undefined): void {
  const fitted = l.busy.w >= MIN_BUSY_SAMPLES ? fitStepTime(l.busy, perToken ?? PRIOR_TOKEN_SHARE * (l.busy.y / l.busy.w), PRIOR_SLOPE_SHARE) : undefined;
  if (fitted && fitted.explained >= MIN_EXPLAINED) l.goodBusyFit = { fit: fitted, at: now };
  else if (l.goodBusyFit && now - l.goodBusyFit.at > GOOD_FIT_HOLD_MS) l.goodBusyFit = undefined;
  const busy = l.goodBusyFit?.fit;
  const fit = busy ?? fitStepTime(l.gaps, 0, PRIOR_SLOPE_SHARE);
  if (!fit) return;
  rates.stepBaseS = fit.baseS;
  rates.stepPerSequenceS = fit.perSequenceS;
  // A token adds no more to a step than a request lives per token of its prefill, which holds
  // that and the others' work in its steps: a slope above it is the noise of a server whose
  // time between scrapes is not its steps' (real vLLM on a shared core fitted 0.82 ms a token
  // against 0.15 ms lived, and that server then drew 10 of 64 requests).
  if (busy) rates.prefillPerTokenS = Math.min(busy.perTokenS, lived ?? Infinity);
}
