import type { BackendView } from '../fleet/backend.js';
import { adapterState, adapterWaitS, type AdapterActivity, type AdapterState } from './adapters.js';
import { heldPrompt, unitsPerToken, type CacheKnowledge, type HeldPrompt } from './prefix/held-prompt.js';
import type { BlockSettings, PromptBlocks } from './prefix/prompt-blocks.js';
import type { PreciseIndex } from './prefix/precise-index.js';
import type { PrefixIndex } from './prefix/prefix-index.js';
import type { RecentDispatches } from './prefix/recent-dispatches.js';
import { rendezvousRanks } from './prefix/rendezvous.js';
import type { TokenRatio } from './prefix/token-ratio.js';
import { pricedSpeed, serviceTime, speedsOf, type ServiceTime, type Speed } from './service-time.js';
import type { Decision, Filter, Picker, RoutedPrompt, Scorer, ScoredBackend, ScoringInput, SchedulingRequest } from './types.js';

export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

export interface SchedulerOptions {
  filters: readonly Filter[];
  scorers: readonly WeightedScorer[];
  picker: Picker;
  /** How many next-best backends to name after the primary, for retries. */
  fallbacks: number;
  /** Which prompt blocks each backend holds; kept across config reloads by the caller. */
  prefixIndex: PrefixIndex;
  /** What backends that publish KV events report holding (token-keyed); kept across reloads. */
  preciseIndex?: PreciseIndex;
  /** Prompts routed to each backend that its events may not show yet; kept across reloads. */
  recentDispatches?: RecentDispatches;
  /** LoRA adapters sent to each backend lately; kept across reloads. */
  adapterActivity?: AdapterActivity;
  /** Wall clock in ms (tests set it). */
  now?: () => number;
  /** Bytes of prompt text per token per backend; kept across reloads with the index. */
  tokenRatio: TokenRatio;
  /** Per backend: mean uncached prompt tokens of what was routed there (its queue's prefill); kept across reloads. */
  meanUncachedPrefill: Map<string, number>;
  blocks: BlockSettings;
}

export interface Scheduler {
  /** `candidates`: every backend that serves the request's model, in any state. */
  schedule(request: SchedulingRequest, candidates: readonly BackendView[]): Decision;
}

/**
 * A prompt's placement key covers its first this many tokens (counted with the configured
 * bytes per token, the same on every replica, not a learned ratio): long enough that prompts
 * which merely open alike (a JSON preamble, a stock first sentence) get different homes, short
 * enough to fall within a shared system prompt.
 */
const PLACEMENT_PREFIX_TOKENS = 256;

const clamp01 = (x: number) => (x > 1 ? 1 : x >= 0 ? x : 0); // NaN -> 0
/** Prompt tokens a backend must prefill: at least one (the last token is always computed). */
const uncached = (prompt: number, cached: number) => Math.max(1, prompt - cached);

/**
 * Records a prompt routed to a backend, by this replica or another: the backend holds its blocks
 * from now on (pending in its KV events until its first token, with a margin), its queue's mean
 * prefill moves toward it, and its adapter is at work there.
 */
export function rememberRouted(
  memory: Pick<SchedulerOptions, 'prefixIndex' | 'recentDispatches' | 'adapterActivity' | 'meanUncachedPrefill'>,
  backend: BackendView,
  routed: RoutedPrompt,
  nowMs: number,
): void {
  const previous = memory.meanUncachedPrefill.get(backend.id);
  memory.meanUncachedPrefill.set(backend.id, previous === undefined ? routed.uncachedTokens : previous + 0.1 * (routed.uncachedTokens - previous));
  memory.prefixIndex.record(backend.id, routed.hashes);
  if (backend.cacheEvents) memory.recentDispatches?.record(backend.id, routed.hashes, nowMs, nowMs + 500 + 1500 * routed.predictedTtftS);
  if (routed.adapter !== undefined) memory.adapterActivity?.record(backend.id, routed.adapter, nowMs);
}

/**
 * Filters, then weighted scores, then the picker. Decisions depend only on the request, the
 * backends' state and what earlier decisions taught the scorers (the prefix index, affinity).
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { filters, scorers, picker, fallbacks, prefixIndex, preciseIndex, recentDispatches, adapterActivity, tokenRatio, meanUncachedPrefill, blocks } = options;
  const now = options.now ?? Date.now;
  const capacities = new Map<string, number>();

  const knowledge: CacheKnowledge = { prefixIndex, preciseIndex, recentDispatches, tokenRatio, blocks };

  function scoringInput(request: SchedulingRequest, backends: readonly BackendView[]) {
    let held: HeldPrompt | undefined;
    let cached: Float64Array | undefined;
    let ranks: Int32Array | null | undefined;
    let fullness: Float64Array | undefined;
    let speeds: Speed[] | undefined;
    let times: ServiceTime[] | undefined;
    let adapters: AdapterState[] | undefined;
    let adapterWaits: Float64Array | undefined;
    const heldOf = () => (held ??= heldPrompt(knowledge, request, backends, now()));
    const input: ScoringInput & { held(): HeldPrompt; predictedFirstTokenS(i: number): number } = {
      request,
      backends,
      held: heldOf,
      promptTokens: () => heldOf().tokens(),
      cachedTokens() {
        if (cached) return cached;
        const h = heldOf();
        const total = h.tokens(); // a tokenizing prompt is read as far as it matters here
        cached = new Float64Array(backends.length);
        for (let i = 0; i < backends.length; i++) cached[i] = Math.min(total, h.held(i));
        return cached;
      },
      placementRanks() {
        if (ranks !== undefined) return ranks;
        // A prompt being tokenized is placed by its text: the same key, read or not.
        const p = heldOf().blocks;
        if (p.hashes.length === 0) return (ranks = null);
        const keyUnits = PLACEMENT_PREFIX_TOKENS * (p.exactTokens ? 1 : blocks.bytesPerToken);
        const keyBlock = Math.min(p.hashes.length, Math.ceil(keyUnits / p.unitsPerBlock));
        return (ranks = rendezvousRanks(p.hashes[keyBlock - 1]!, backends.map((b) => b.endpoint)));
      },
      cacheFullness() {
        if (fullness) return fullness;
        const p = heldOf().blocks;
        fullness = new Float64Array(backends.length);
        for (let i = 0; i < backends.length; i++) {
          syncCapacity(backends[i]!, p);
          fullness[i] = prefixIndex.fullness(backends[i]!.id);
        }
        return fullness;
      },
      speeds: () => (speeds ??= speedsOf(backends)),
      serviceTimes() {
        if (times) return times;
        const speed = input.speeds();
        const t = now();
        return (times = backends.map((_, i) => timeOn(i, pricedSpeed(speed[i]!), t)));
      },
      predictedFirstTokenS: (i) => timeOn(i, input.speeds()[i]!, now()).firstTokenS,
      adapterStates() {
        if (adapters) return adapters;
        const adapter = request.adapter;
        const t = now();
        return (adapters = backends.map((b) => (adapter === undefined ? 'unknown' : adapterState(b, adapter, adapterActivity?.recent(b.id, t) ?? []))));
      },
      adapterWaits() {
        if (adapterWaits) return adapterWaits;
        const states = input.adapterStates();
        const speed = input.speeds();
        return (adapterWaits = Float64Array.from(states, (state, i) => adapterWaitS(state, speed[i]!)));
      },
    };
    /** The request's time on backend i at a given speed. */
    function timeOn(i: number, speed: Speed, nowMs: number): ServiceTime {
      const prompt = input.promptTokens();
      const b = backends[i]!;
      return serviceTime(b, speed, uncached(prompt, input.cachedTokens()[i]!), meanUncachedPrefill.get(b.id) ?? prompt, nowMs);
    }
    return input;
  }

  /** Sizes a backend's slice of the index to its real KV cache once its metrics tell it. */
  function syncCapacity(backend: BackendView, p: PromptBlocks) {
    const m = backend.metrics;
    if (!m?.numGpuBlocks || !m.blockSize) return;
    const capacity = Math.floor((m.numGpuBlocks * m.blockSize * unitsPerToken(knowledge, p, backend)) / p.unitsPerBlock);
    if (capacities.get(backend.id) === capacity) return;
    capacities.set(backend.id, capacity);
    prefixIndex.setCapacity(backend.id, capacity);
  }

  return {
    schedule(request, candidates) {
      if (candidates.length === 0) return { kind: 'reject', code: 'model_not_found', model: request.model };
      let eligible: readonly BackendView[] = candidates;
      for (const filter of filters) {
        eligible = filter.filter(request, eligible);
        if (eligible.length === 0) return { kind: 'reject', ...(filter.rejection?.(request) ?? { code: 'no_healthy_backend', model: request.model }) };
      }
      const input = scoringInput(request, eligible);
      const totals = new Float64Array(eligible.length);
      for (const { scorer, weight } of scorers) {
        if (weight === 0) continue;
        const scores = scorer.score(input);
        for (let i = 0; i < eligible.length; i++) totals[i]! += weight * clamp01(scores[i] ?? 0);
      }
      const ranked = picker.rank(eligible.map((backend, i): ScoredBackend => ({ backend, score: totals[i]! })));
      const primary = ranked[0]!.backend;
      // Read before this request is recorded in the index, which would make it look cached.
      const i = eligible.indexOf(primary);
      const cachedTokens = input.cachedTokens()[i] ?? 0;
      const why = {
        promptTokens: input.promptTokens(),
        cachedTokens,
        candidates: eligible.length,
        predictedTtftS: input.predictedFirstTokenS(i),
        score: ranked[0]!.score,
        runnerUpScore: ranked[1]?.score ?? null,
      };
      for (const { scorer } of scorers) scorer.picked?.(input, primary);
      const p = input.held().blocks;
      syncCapacity(primary, p);
      const routed: RoutedPrompt = {
        hashes: p.hashes,
        uncachedTokens: uncached(why.promptTokens, cachedTokens),
        predictedTtftS: why.predictedTtftS,
        adapter: request.adapter,
        textBytes: p.exactTokens ? undefined : p.units,
      };
      rememberRouted(options, primary, routed, now());
      return { kind: 'route', primary, fallbacks: ranked.slice(1, 1 + fallbacks).map((s) => s.backend), ranked, why, routed };
    },
  };
}
