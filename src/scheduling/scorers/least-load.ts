import { estimateLoad, type LoadWeights } from '../load.js';
import type { Scorer } from '../types.js';

/** Scores the least loaded backend 1 and the most loaded 0, linearly between. */
export function createLeastLoadScorer(weights: LoadWeights): Scorer {
  return {
    name: 'least-load',
    score(_request, backends) {
      const loads = backends.map((b) => estimateLoad(b, weights));
      const min = Math.min(...loads);
      const max = Math.max(...loads);
      const range = max - min;
      return loads.map((load) => (range > 0 ? (max - load) / range : 1));
    },
  };
}
