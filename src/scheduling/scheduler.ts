import type { BackendView } from '../fleet/backend.js';
import type { Decision, Filter, Picker, Scorer, ScoredBackend, SchedulingRequest } from './types.js';

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
}

export interface Scheduler {
  /** `candidates`: every backend that serves the request's model, in any state. */
  schedule(request: SchedulingRequest, candidates: readonly BackendView[]): Decision;
}

const clamp01 = (x: number) => (x > 1 ? 1 : x >= 0 ? x : 0); // NaN -> 0

/** Filters, then weighted scores, then the picker: a pure function of its inputs. */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { filters, scorers, picker, fallbacks } = options;
  return {
    schedule(request, candidates) {
      if (candidates.length === 0) {
        return {
          kind: 'reject',
          status: 404,
          code: 'model_not_found',
          message: `The model \`${request.model}\` does not exist.`,
        };
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
      const totals = new Float64Array(eligible.length);
      for (const { scorer, weight } of scorers) {
        const scores = scorer.score(request, eligible);
        for (let i = 0; i < eligible.length; i++) totals[i]! += weight * clamp01(scores[i] ?? 0);
      }
      const ranked = picker.rank(eligible.map((backend, i): ScoredBackend => ({ backend, score: totals[i]! })));
      const [first, ...rest] = ranked;
      return { kind: 'route', primary: first!.backend, fallbacks: rest.slice(0, fallbacks).map((s) => s.backend), ranked };
    },
  };
}
