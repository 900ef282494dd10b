import type { BackendView } from '../../fleet/backend.js';

/**
 * Bytes of prompt text per token, learned per backend: the bytes of prompt text we routed
 * there against the prompt tokens its vllm:prompt_tokens_total says it processed meanwhile,
 * of which our share of its work (what other router replicas or callers sent is in its count,
 * not in our bytes: with two replicas the ratio would come out halved, every prompt would look
 * twice as long, and half as many would seem to fit in its cache).
 * Until enough has been seen, the configured guess (about 4 for English) stands. A wrong ratio
 * would misjudge how many prompts fit in a backend's cache.
 */
export interface TokenRatio {
  bytesPerToken(backend: BackendView): number;
  /** Records `bytes` of prompt text routed to `backend`. */
  sent(backend: BackendView, bytes: number): void;
}

const MIN_TOKENS = 20_000;
/** Below this share of a backend's work, what we sent says too little of its prompts. */
const MIN_OWN_SHARE = 0.1;

export function createTokenRatio(defaultBytesPerToken: number): TokenRatio {
  const state = new Map<string, { baseTokens: number; bytes: number; ratio: number }>();
  return {
    bytesPerToken(backend) {
      const s = state.get(backend.id);
      if (!s) return defaultBytesPerToken;
      const now = backend.metrics?.promptTokensTotal;
      if (now !== undefined && now < s.baseTokens) {
        state.delete(backend.id); // the server restarted: start over
        return defaultBytesPerToken;
      }
      if (now !== undefined && now - s.baseTokens >= MIN_TOKENS) {
        const ours = Math.max(MIN_OWN_SHARE, 1 - (backend.recent.othersShare ?? 0));
        const measured = s.bytes / ((now - s.baseTokens) * ours);
        if (measured >= 1 && measured <= 12) s.ratio = measured;
      }
      return s.ratio;
    },
    sent(backend, bytes) {
      let s = state.get(backend.id);
      if (!s) {
        const base = backend.metrics?.promptTokensTotal;
        if (base === undefined) return;
        state.set(backend.id, (s = { baseTokens: base, bytes: 0, ratio: defaultBytesPerToken }));
      }
      s.bytes += bytes;
    },
  };
}
