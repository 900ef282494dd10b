import type { BackendView } from '../fleet/backend.js';
import type { AdapterState } from './adapters.js';
import type { ServiceTime, Speed } from './service-time.js';

/**
 * What the prompt is made of. `text` is the prompt exactly as the client's JSON spelled it
 * (the `messages` array, or the contents of a `prompt` string) as UTF-8 bytes, a view into the
 * request body: affinity hashes it without decoding or copying it.
 */
export type PromptSource =
  | { kind: 'text'; bytes: Uint8Array }
  | { kind: 'tokens'; tokens: readonly number[] }
  | { kind: 'tokenizing'; reader: PromptTokenReader; bytes: Uint8Array }
  | { kind: 'none' };

/**
 * A text prompt's token ids as the model's tokenizer makes them, encoded only as far as they
 * are read: the scheduler reads while some backend holds all it has read, and stops there.
 * `bytes` (beside it in the prompt source) is its text as `text` prompts carry it, which
 * places its opening (rendezvous) without reading a token.
 */
export interface PromptTokenReader {
  readonly ids: ArrayLike<number>;
  readonly done: boolean;
  /** Reads on (at least one more piece of text); false when nothing was left. */
  readMore(): boolean;
  /** The whole prompt's length in tokens: exact once done, else scaled from what was read. */
  estimatedLength(): number;
}

/** The routing-relevant part of one OpenAI/vLLM request. */
export interface SchedulingRequest {
  model: string;
  stream: boolean;
  prompt: PromptSource;
  /** OpenAI `user` field. */
  user?: string;
  /** Session identity for sticky routing (a configured header, or `user`), if any. */
  sessionKey?: string;
  /** Endpoints (`ip:port`) a gateway allows for this request (endpoint-picker subset hint), if it narrowed them. */
  allowedEndpoints?: ReadonlySet<string>;
  /** The LoRA adapter `model` names, if it names one: its KV blocks are its own. */
  adapter?: string;
}

/** Removes backends that must not receive the request. Returns a subset of its input. */
export interface Filter {
  readonly name: string;
  filter(request: SchedulingRequest, backends: readonly BackendView[]): readonly BackendView[];
  /** Why the request is refused when this filter leaves no backend (default: no healthy backend). */
  rejection?(request: SchedulingRequest): Rejection;
}

/** What scorers see for one request: computed once, shared by every scorer. */
export interface ScoringInput {
  readonly request: SchedulingRequest;
  /** The backends that passed the filters. */
  readonly backends: readonly BackendView[];
  /** Estimated prompt length in tokens. */
  promptTokens(): number;
  /** Per backend (same order), estimated prompt tokens already in its KV cache. */
  cachedTokens(): Float64Array;
  /**
   * Per backend, its place in the order every router replica would put this prompt's opening
   * in (rendezvous hashing over the candidates' endpoints): 0 for its home, 1 for where it
   * spills first, and so on. Null for a prompt shorter than a block.
   */
  placementRanks(): Int32Array | null;
  /** Per backend, how full its KV cache is believed to be (0..1): new blocks evict old ones at 1. */
  cacheFullness(): Float64Array;
  /** Per backend, its speed: learned from its metrics, else its peers', else the prior. */
  speeds(): readonly Speed[];
  /** Per backend, the time this request would take there and cost the requests running there, priced as routing prices it (service-time.ts `pricedSpeed`). */
  serviceTimes(): readonly ServiceTime[];
  /** Per backend, where the LoRA adapter the request names stands there (all 'unknown' for the base model). */
  adapterStates(): readonly AdapterState[];
  /** Per backend, seconds the request would wait for its adapter there before its prefill (0 for the base model). */
  adapterWaits(): Float64Array;
}

/**
 * Rates each backend for this request in [0, 1], higher is better. Returns one score per
 * backend, in the order given. The scheduler clamps and weights scores, so no scorer can
 * dominate by returning out-of-range values.
 */
export interface Scorer {
  readonly name: string;
  score(input: ScoringInput): ArrayLike<number>;
  /** Told which backend got the request, for scorers that learn (affinity, averages). */
  picked?(input: ScoringInput, backend: BackendView): void;
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

/**
 * Why no backend gets the request. The scheduler says why; the protocol layer decides how a
 * client hears it (each code is an entry of the error catalogue, contract/errors.ts).
 */
export type Rejection =
  | { code: 'model_not_found'; model: string }
  | { code: 'no_healthy_backend'; model: string }
  | { code: 'no_eligible_endpoint'; model: string }
  | { code: 'server_overloaded'; maxWaiting: number };

/** What routing a prompt to a backend teaches the scheduler: the same whichever replica routed it. */
export interface RoutedPrompt {
  /** Its chained block hashes (text or token ids, as the prefix index keys them). */
  hashes: Float64Array;
  /** Prompt tokens the backend was predicted to prefill (at least one). */
  uncachedTokens: number;
  predictedTtftS: number;
  adapter: string | undefined;
  /** Bytes of its text where it was hashed as text (not token ids): what teaches the backend's bytes per token. */
  textBytes: number | undefined;
}

export type Decision =
  | { kind: 'route'; primary: BackendView; fallbacks: BackendView[]; ranked: ScoredBackend[]; why: DecisionReason; routed: RoutedPrompt }
  | ({ kind: 'reject' } & Rejection);

/** Why the primary won, in figures an operator can read. */
export interface DecisionReason {
  /** Estimated prompt tokens, and how many of them the primary already held. */
  promptTokens: number;
  cachedTokens: number;
  /** Backends that passed the filters. */
  candidates: number;
  /** Time to first token predicted on the primary, in seconds. */
  predictedTtftS: number;
  /** The primary's weighted score and the runner-up's (equal scores mean a random tie-break). */
  score: number;
  runnerUpScore: number | null;
}
