import { activeUnseen } from '../../fleet/backend.js';
import type { Scorer } from '../types.js';
import { lowerIsBetter } from './normalize.js';

/**
 * Single-signal load scorers, for profiles that weigh signals themselves (as the Gateway API
 * Inference Extension's endpoint picker does). Without fresh metrics a backend is scored by
 * our in-flight count, never as idle.
 */
export const queueScorer: Scorer = {
  name: 'queue',
  score: ({ backends }) => lowerIsBetter(backends.map((b) => (b.metrics ? b.metrics.waiting + activeUnseen(b) : b.inflight))),
};

export const runningScorer: Scorer = {
  name: 'running',
  score: ({ backends }) => lowerIsBetter(backends.map((b) => (b.metrics ? Math.max(b.inflight, b.metrics.running) : b.inflight))),
};

export const kvCacheScorer: Scorer = {
  name: 'kv-cache',
  score: ({ backends }) => lowerIsBetter(backends.map((b) => b.metrics?.kvCacheUsage ?? 1)),
};

export const inflightScorer: Scorer = {
  name: 'inflight',
  score: ({ backends }) => lowerIsBetter(backends.map((b) => b.inflight)),
};

/** Share of the prompt each backend already holds (0..1). */
export const prefixMatchScorer: Scorer = {
  name: 'prefix-match',
  score(input) {
    const prompt = input.promptTokens();
    return Array.from(input.cachedTokens(), (cached) => cached / prompt);
  },
};
