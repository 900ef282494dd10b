import type { BackendView } from '../../fleet/backend.js';

/**
 * Bytes of prompt text per token, learned per backend: the prompt text of the requests routed
 * there that have ended (ours and peers') against the prompt tokens of the requests it reports
 * finished (vllm:request_prompt_tokens), of which our share of its work (what other callers
 * sent is in its count, not in our bytes: with two replicas the ratio would come out halved).
 * Both are counted as requests end, so requests still in flight are in neither: text counted
 * as it was sent, against tokens counted as prompts are prefilled, took every queued prompt's
 * text for tokens not yet counted (long documents came out at half their length a second
 * into a run). A server without that histogram is read by its prompt token counter.
 * Until enough has been seen, the configured guess (about 4 for English) stands. A wrong ratio
 * would misjudge how long prompts are and how many fit in a backend's cache.
 */
export interface TokenRatio {
  bytesPerToken(backend: BackendView): number;
}

const MIN_TOKENS = 20_000;
/** Below this share of a backend's work, what we sent says too little of its prompts. */
const MIN_OWN_SHARE = 0.1;

/** Prompt tokens of the requests a backend has finished, as of its last read. */
function finishedPromptTokens(backend: BackendView): number | undefined {
  const m = backend.metrics;
  return m?.histograms.promptTokens?.sum ?? m?.promptTokensTotal;
}

export function createTokenRatio(defaultBytesPerToken: number): TokenRatio {
  const state = new Map<string, { baseTokens: number; baseBytes: number; ratio: number }>();
  return {
    bytesPerToken(backend) {
      const tokens = finishedPromptTokens(backend);
      if (tokens === undefined) return state.get(backend.id)?.ratio ?? defaultBytesPerToken;
      const s = state.get(backend.id);
      // First sight, or the server restarted (its count went back): start over from here.
      if (!s || tokens < s.baseTokens) {
        state.set(backend.id, { baseTokens: tokens, baseBytes: backend.endedPromptBytesAtRead, ratio: defaultBytesPerToken });
        return defaultBytesPerToken;
      }
      if (tokens - s.baseTokens >= MIN_TOKENS) {
        const ours = Math.max(MIN_OWN_SHARE, 1 - (backend.recent.othersShare ?? 0));
        const measured = (backend.endedPromptBytesAtRead - s.baseBytes) / ((tokens - s.baseTokens) * ours);
        if (measured >= 1 && measured <= 12) s.ratio = measured;
      }
      return s.ratio;
    },
  };
}
