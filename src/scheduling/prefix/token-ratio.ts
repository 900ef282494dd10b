import type { BackendView } from '../../fleet/backend.js';

/**
 * Bytes of prompt text per token, learned per backend: the bytes of prompt text we routed
 * there against the prompt tokens its vllm:prompt_tokens_total says it processed meanwhile.
 * Until enough has been seen, the configured guess (about 4 for English) stands. A wrong ratio
 * would misjudge how many prompts fit in a backend's cache.
 */
export interface TokenRatio {
  bytesPerToken(backend: BackendView): number;
  /** Records `bytes` of prompt text routed to `backend`. */
  sent(backend: BackendView, bytes: number): void;
}

const MIN_TOKENS = 20_000;

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
        const measured = s.bytes / (now - s.baseTokens);
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
