import { estimateLoad, type LoadWeights } from '../load.js';
import type { Scorer } from '../types.js';
import { lowerIsBetter } from './normalize.js';

/** Least estimated load (see estimateLoad): the predecessor's formula with our own accounting. */
export function createLeastLoadScorer(weights: LoadWeights): Scorer {
  return { name: 'least-load', score: ({ backends }) => lowerIsBetter(backends.map((b) => estimateLoad(b, weights))) };
}
