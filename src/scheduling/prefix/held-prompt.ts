import type { BackendView } from '../../fleet/backend.js';
import type { SchedulingRequest } from '../types.js';
import { tokenBlockKeys, type PreciseIndex } from './precise-index.js';
import type { PrefixIndex } from './prefix-index.js';
import { chainSeed, promptBlocks, type BlockSettings, type PromptBlocks } from './prompt-blocks.js';
import type { RecentDispatches } from './recent-dispatches.js';
import type { TokenRatio } from './token-ratio.js';

/** What knows which backend holds what: kept across decisions and reloads by the scheduler's caller. */
export interface CacheKnowledge {
  /** Which prompt blocks each backend was sent (the guess). */
  prefixIndex: PrefixIndex;
  /** What backends that publish KV events report holding (token-keyed). */
  preciseIndex?: PreciseIndex;
  /** Prompts routed to each backend that its events may not show yet. */
  recentDispatches?: RecentDispatches;
  tokenRatio: TokenRatio;
  blocks: BlockSettings;
}

/** One request's prompt against what the candidates hold. */
export interface HeldPrompt {
  /**
   * The blocks the guesses (the approximate index, the pending dispatches, placement) match it
   * on: its text's (a tokenizing prompt's too, whole before a token is read, so that what is
   * remembered of it covers all of it, not only as far as it was read), or the ids a client sent.
   */
  readonly blocks: PromptBlocks;
  /** Its length in tokens; a tokenizing prompt is read as far as the holds depend on it, and estimated beyond. */
  tokens(): number;
  /** Prompt tokens backend `i` holds, as best it is known (not capped at the prompt's length). */
  held(i: number): number;
}

/** Units of a prompt's blocks per token on a backend: 1 for ids, else the bytes per token learned there. */
export function unitsPerToken(knowledge: CacheKnowledge, p: PromptBlocks, b: BackendView): number {
  return p.exactTokens ? 1 : knowledge.tokenRatio.bytesPerToken(b);
}

export function heldPrompt(knowledge: CacheKnowledge, request: SchedulingRequest, backends: readonly BackendView[], nowMs: number): HeldPrompt {
  const { prefixIndex, preciseIndex, recentDispatches, blocks } = knowledge;
  const prompt = request.prompt;
  const reader = prompt.kind === 'tokenizing' ? prompt.reader : undefined;
  // Ids a client sent; a prompt being read is asked for its ids each time (reading replaces them).
  const sentIds = prompt.kind === 'tokens' ? prompt.tokens : undefined;
  const p = promptBlocks(prompt, blocks, chainSeed(request.adapter));
  // A prompt being read has its own tokens per byte; else the backend's learned ratio.
  const perToken = (b: BackendView) => (reader ? p.units / Math.max(1, reader.estimatedLength()) : unitsPerToken(knowledge, p, b));
  // The guesses' matches, in blocks, once a decision: reading on changes how many tokens they make, not them.
  const indexed = new Int32Array(backends.length).fill(-1);
  const pending = new Int32Array(backends.length).fill(-1);
  const indexedTokens = (i: number) => {
    if (indexed[i]! < 0) indexed[i] = prefixIndex.match(backends[i]!.id, p.hashes);
    return (indexed[i]! * p.unitsPerBlock) / perToken(backends[i]!);
  };
  const pendingTokens = (i: number) => {
    if (pending[i]! < 0) pending[i] = recentDispatches?.match(backends[i]!.id, p.hashes, nowMs) ?? 0;
    return (pending[i]! * p.unitsPerBlock) / perToken(backends[i]!);
  };
  // Keys of the ids read so far, per block size; dropped whenever more is read.
  const keysBySize = new Map<number, Float64Array>();

  /**
   * Prompt tokens a backend's own KV events say it holds: for prompts as token ids (sent so, or
   * being tokenized), on a backend whose events are followed. -1 where they cannot say.
   */
  function reported(b: BackendView): number {
    const view = reader ? reader.ids : sentIds;
    if (!preciseIndex || !view) return -1;
    const state = b.cacheEvents?.state;
    if (state !== 'live' && state !== 'partial') return -1;
    const size = preciseIndex.blockSize(b.id);
    if (size === undefined) return -1;
    let keys = keysBySize.get(size);
    if (!keys) keysBySize.set(size, (keys = tokenBlockKeys(view, size, request.adapter ?? null)));
    return preciseIndex.match(b.id, keys) * size;
  }

  function held(i: number): number {
    const b = backends[i]!;
    const fromEvents = reported(b);
    if (fromEvents < 0) return indexedTokens(i);
    // A complete, flowing event history is the truth, but for what we sent there that is not prefilled yet.
    if (b.cacheEvents?.state === 'live' && !b.cacheEventsStale) return Math.max(fromEvents, pendingTokens(i));
    // A partial or stale one may miss blocks: the guess may know them.
    return Math.max(fromEvents, indexedTokens(i));
  }

  let tokens: number | undefined;
  return {
    blocks: p,
    held,
    tokens() {
      if (tokens !== undefined) return tokens;
      if (!reader) {
        let ratio = 0;
        for (const b of backends) ratio += perToken(b);
        return (tokens = Math.max(1, Math.ceil(p.units / (ratio / backends.length))));
      }
      // Read on while some backend holds all that was read: where the longest hold ends is all
      // the rest of the text can change.
      for (;;) {
        keysBySize.clear();
        if (reader.done) break;
        const read = reader.ids.length;
        let holdsAll = false;
        for (let i = 0; i < backends.length && !holdsAll; i++) holdsAll = held(i) + Math.max(blocks.blockTokens, preciseIndex?.blockSize(backends[i]!.id) ?? 0) > read;
        if (!holdsAll || !reader.readMore()) break;
      }
      return (tokens = Math.max(1, reader.estimatedLength()));
    },
  };
}
