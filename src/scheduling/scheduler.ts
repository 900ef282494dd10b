import type { BackendView } from '../fleet/backend.js';
import { promptBlocks, type BlockSettings, type PromptBlocks } from './prefix/prompt-blocks.js';
import type { PrefixIndex } from './prefix/prefix-index.js';
import type { Decision, Filter, Picker, Scorer, ScoredBackend, ScoringInput, SchedulingRequest } from './types.js';

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
  blocks: BlockSettings;
}

export interface Scheduler {
  /** `candidates`: every backend that serves the request's model, in any state. */
  schedule(request: SchedulingRequest, candidates: readonly BackendView[]): Decision;
}

const clamp01 = (x: number) => (x > 1 ? 1 : x >= 0 ? x : 0); // NaN -> 0

/**
 * Filters, then weighted scores, then the picker. Decisions depend only on the request, the
 * backends' state and what earlier decisions taught the scorers (the prefix index, affinity).
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { filters, scorers, picker, fallbacks, prefixIndex, blocks } = options;
  const capacities = new Map<string, number>();

  function scoringInput(request: SchedulingRequest, backends: readonly BackendView[]) {
    let prompt: PromptBlocks | undefined;
    let cached: Float64Array | undefined;
    const blocksOf = () => (prompt ??= promptBlocks(request.prompt, blocks));
    const input: ScoringInput & { blocks(): PromptBlocks } = {
      request,
      backends,
      blocks: blocksOf,
      promptTokens: () => blocksOf().promptTokens,
      cachedTokens() {
        if (cached) return cached;
        const p = blocksOf();
        cached = new Float64Array(backends.length);
        for (let i = 0; i < backends.length; i++) {
          cached[i] = Math.min(p.promptTokens, prefixIndex.match(backends[i]!.id, p.hashes) * p.tokensPerBlock);
        }
        return cached;
      },
    };
    return input;
  }

  /** Sizes a backend's slice of the index to its real KV cache once its metrics tell it. */
  function syncCapacity(backend: BackendView, tokensPerBlock: number) {
    const m = backend.metrics;
    if (!m?.numGpuBlocks || !m.blockSize) return;
    const capacity = Math.floor((m.numGpuBlocks * m.blockSize) / tokensPerBlock);
    if (capacities.get(backend.id) === capacity) return;
    capacities.set(backend.id, capacity);
    prefixIndex.setCapacity(backend.id, capacity);
  }

  return {
    schedule(request, candidates) {
      if (candidates.length === 0) {
        return { kind: 'reject', status: 404, code: 'model_not_found', message: `The model \`${request.model}\` does not exist.` };
      }
      let eligible: readonly BackendView[] = candidates;
      for (const filter of filters) {
        eligible = filter.filter(request, eligible);
        if (eligible.length === 0) {
          return {
            kind: 'reject',
            status: 503,
            code: 'no_healthy_backend',
            message: `No healthy backend is serving the model \`${request.model}\` right now; try again shortly.`,
          };
        }
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
      for (const { scorer } of scorers) scorer.picked?.(input, primary);
      const p = input.blocks();
      syncCapacity(primary, p.tokensPerBlock);
      prefixIndex.record(primary.id, p.hashes);
      return { kind: 'route', primary, fallbacks: ranked.slice(1, 1 + fallbacks).map((s) => s.backend), ranked };
    },
  };
}
