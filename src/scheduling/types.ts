import type { BackendView } from '../fleet/backend.js';

/** What the prompt is made of, kept as parsed so that affinity can hash it without re-parsing. */
export type PromptSource =
  | { kind: 'messages'; messages: readonly unknown[] }
  | { kind: 'text'; text: string }
  | { kind: 'tokens'; tokens: readonly number[] }
  | { kind: 'none' };

/** The routing-relevant part of one OpenAI/vLLM request. */
export interface SchedulingRequest {
  model: string;
  stream: boolean;
  prompt: PromptSource;
  /** OpenAI `user` field, for optional session affinity. */
  user?: string;
}

/** Removes backends that must not receive the request. Returns a subset of its input. */
export interface Filter {
  readonly name: string;
  filter(request: SchedulingRequest, backends: readonly BackendView[]): readonly BackendView[];
}

/**
 * Rates each backend for this request in [0, 1], higher is better. Returns one score per
 * backend, in the order given. The scheduler clamps and weights scores, so no scorer can
 * dominate by returning out-of-range values.
 */
export interface Scorer {
  readonly name: string;
  score(request: SchedulingRequest, backends: readonly BackendView[]): ArrayLike<number>;
}

export interface ScoredBackend {
  backend: BackendView;
  /** Weighted sum of the scorers' clamped scores. */
  score: number;
}

/** Orders scored backends, best first. */
export interface Picker {
  readonly name: string;
  rank(scored: ScoredBackend[]): ScoredBackend[];
}

export type Decision =
  | { kind: 'route'; primary: BackendView; fallbacks: BackendView[]; ranked: ScoredBackend[] }
  | { kind: 'reject'; status: 404 | 429 | 503; code: string; message: string };
