import type { BackendView, ServiceRates } from '../fleet/backend.js';
import { estimateQueue } from './load.js';

/** A backend's speed with every figure filled in: its own, else the fleet's, else the prior. */
export interface Speed {
  stepBaseS: number;
  stepPerSequenceS: number;
  prefillPerTokenS: number;
  contendedPrefillPerTokenS: number;
  slotHoldS: number;
  admissionS: number;
  frontEndS: number;
  outputTokens: number;
}

/**
 * Assumed before any backend of the model has shown its own: an 8B model on one GPU (a 6 ms
 * step, +0.15 ms per running sequence, 0.05 ms per prefilled token, 128 generated tokens).
 * Only their ratios matter, and only until the first scrapes arrive.
 */
export const PRIOR_SPEED: Readonly<Speed> = Object.freeze({
  stepBaseS: 0.006,
  stepPerSequenceS: 0.00015,
  prefillPerTokenS: 0.00005,
  contendedPrefillPerTokenS: 0.00005,
  slotHoldS: 128 * 0.006,
  admissionS: 0.003,
  frontEndS: 0,
  outputTokens: 128,
});

const FIGURES = ['stepBaseS', 'stepPerSequenceS', 'prefillPerTokenS', 'contendedPrefillPerTokenS', 'slotHoldS', 'admissionS', 'frontEndS', 'outputTokens'] as const satisfies readonly (keyof Speed & keyof ServiceRates)[];
/**
 * The request's, not the server's: how long requests run, and the API server's own work on
 * them (tokenizing, templating), the same code on every server of a model. Taken per server,
 * a front end's time follows its load where the API server shares a CPU with the engine (real
 * vLLM on one core: 23-207 ms between two servers and runs): a server that read 207 ms (its
 * step slow too, for a while) drew 6 of 64 requests.
 */
const REQUEST_FIGURES: ReadonlySet<string> = new Set(['outputTokens', 'frontEndS']);
const SPEED_FIGURES = FIGURES.filter((f) => !REQUEST_FIGURES.has(f));

/**
 * Requests of a backend's own worth as much as its peers' figures: a backend that has shown
 * little (new, or left idle because it once looked slow, its evidence decayed) is judged mostly
 * by its peers, so it gets traffic again and is measured afresh rather than starved.
 */
const PEER_WEIGHT_REQUESTS = 4;

/**
 * Each backend's speed: its own figures weighed against the fastest of its peers' (a server
 * that has shown little, new or restarted, is taken to be as fast as the best of them, so it
 * gets traffic and is measured; a slower guess would leave it idle for good when the fleet is
 * quiet), else the prior. Output length and the front end's time are the requests': the mean
 * over the candidates.
 */
export function speedsOf(backends: readonly BackendView[]): Speed[] {
  const fleet = { ...PRIOR_SPEED };
  for (const figure of FIGURES) {
    let sum = 0;
    let weight = 0;
    let fastest = Infinity;
    for (const b of backends) {
      const value = b.rates[figure];
      if (value !== undefined) {
        sum += value * (b.rates.measuredRequests + 1);
        weight += b.rates.measuredRequests + 1;
        fastest = Math.min(fastest, value);
      }
    }
    if (weight > 0) fleet[figure] = REQUEST_FIGURES.has(figure) ? sum / weight : fastest;
  }
  return backends.map((b) => {
    const speed = { ...fleet };
    const own = b.rates.measuredRequests / (b.rates.measuredRequests + PEER_WEIGHT_REQUESTS);
    // The request figures stay the fleet's: what one server happened to be sent, or how busy
    // its API server was, must not make the next request look longer there.
    for (const figure of SPEED_FIGURES) {
      const value = b.rates[figure];
      if (value !== undefined) speed[figure] = own * value + (1 - own) * fleet[figure];
    }
    return speed;
  });
}

/**
 * A backend's speed as the routing cost prices it: a prefilled token at the rate requests
 * live it there (with the work that shares their steps), when that is above what a token adds
 * to a step. The marginal rate predicts a first token; it underprices a cache miss on a busy
 * server, whose prefill the requests around it wait through too, and on a small cache the
 * prompts it evicts (measured: shared system prompts on 512-block servers ran at 1.35x least
 * request's throughput priced at the marginal rate, 2.48x at this one).
 */
export function pricedSpeed(speed: Speed): Speed {
  return speed.contendedPrefillPerTokenS > speed.prefillPerTokenS ? { ...speed, prefillPerTokenS: speed.contendedPrefillPerTokenS } : speed;
}

/** Seconds a request would spend on one backend, and what it would cost the others there. */
export interface ServiceTime {
  /** Until its first token: waiting for a slot (or the step in progress), the queue's prefill ahead, its own prefill. */
  firstTokenS: number;
  /** Of that, waiting for a slot on a full backend. */
  slotWaitS: number;
  /** Of that, prefilling the part of its prompt the backend does not hold. */
  ownPrefillS: number;
  /** What it adds to the requests already running: its prefill stalls their next token, and each of their steps grows. */
  dragS: number;
}

/**
 * The time model: an engine step with n running sequences takes base + n * perSequence, a
 * prefill takes one step plus its uncached tokens at the backend's prefill rate, a request
 * queued behind a full backend waits for a slot (the running requests are part way through
 * their hold at points spread evenly, so the first of `capacity` ends after
 * slotHold / (capacity + 1) on average, and each next one as long after) while the prefill
 * ahead of it runs, else for the step in progress and then the prefill ahead: the queued
 * requests', or what we sent there that is still prefilling, whichever is more.
 */
export function serviceTime(backend: BackendView, speed: Speed, uncachedTokens: number, queuedUncachedTokens: number, nowMs: number): ServiceTime {
  const { running, waiting, full } = estimateQueue(backend);
  const step = speed.stepBaseS + speed.stepPerSequenceS * (running + 1);
  const ownPrefillS = uncachedTokens * speed.prefillPerTokenS;
  const slotWaitS = full ? ((waiting + 1) * speed.slotHoldS) / (backend.capacity + 1) : 0;
  // Prefill ahead of ours: the queue's, or what we sent there that has not had its first token
  // yet (admitted, it shares the steps' token budget with ours), whichever is more.
  const queuedPrefillS = Math.max(waiting * queuedUncachedTokens, prefillingTokens(backend, speed, nowMs)) * speed.prefillPerTokenS;
  return {
    // While it waits for a slot, the engine runs the prefill ahead: whichever takes longer.
    firstTokenS: speed.frontEndS + (full ? Math.max(slotWaitS, queuedPrefillS) : speed.admissionS + queuedPrefillS) + step + ownPrefillS,
    slotWaitS,
    ownPrefillS,
    dragS: running * (ownPrefillS + (speed.outputTokens / 2) * speed.stepPerSequenceS),
  };
}

/** Requests sent to a backend that can be prefilling at once, at most: beyond, it is queueing, priced as such. */
const RECENT_PREFILLS = 64;

/**
 * Prompt tokens our requests sent to a backend still have to prefill, as its speed says: each
 * prefills after those sent before it (a step, then its tokens), its tokens counting down as it goes.
 * Requests sent together to the server that just freed slots would otherwise all look as quick
 * as the first, and prefill in each other's way. (Timed by the speed alone, not by the
 * predictions, which count this: that would feed on itself.)
 */
export function prefillingTokens(backend: BackendView, speed: Speed, nowMs: number): number {
  let busyUntil = 0;
  let tokens = 0;
  // The latest few: predictions pile up (up to thousands) while a backend's metrics cannot be
  // read, and this runs for every candidate of every request.
  const pending = backend.predictedTtft;
  for (let i = Math.max(0, pending.length - RECENT_PREFILLS); i < pending.length; i++) {
    const p = pending[i]!;
    if (p.prefillTokens === 0) continue;
    const sentAt = p.dueAt - p.seconds * 1000;
    const start = Math.max(busyUntil, sentAt);
    busyUntil = start + 1000 * (speed.stepBaseS + p.prefillTokens * speed.prefillPerTokenS);
    // What is left of it: all before it starts, none once done.
    if (busyUntil > nowMs) tokens += p.prefillTokens * Math.min(1, (busyUntil - nowMs) / (busyUntil - start));
  }
  return tokens;
}
