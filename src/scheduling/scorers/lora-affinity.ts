import type { AdapterState } from '../adapters.js';
import type { Scorer } from '../types.js';

const TIERS: Record<AdapterState, number> = { active: 1, 'free-slot': 0.5, full: 0, unknown: 0.5 };

/**
 * For profiles of weighted scorers: a backend where the request's LoRA adapter is at work
 * scores 1, one with a free adapter slot 0.5, one whose slots are all taken 0 (the Gateway API
 * Inference Extension's three tiers). The default `first-token-cost` prices the same states
 * in seconds instead, beside the load.
 */
export const loraAffinityScorer: Scorer = {
  name: 'lora-affinity',
  score: (input) => input.adapterStates().map((state) => TIERS[state]),
};
