import type { BackendView } from '../../fleet/backend.js';

/**
 * Characters per token, learned per backend: the characters of prompt text we routed there
 * against the prompt tokens its vllm:prompt_tokens_total says it processed meanwhile. Until
 * enough has been seen, the configured guess (about 4 for English) stands. A wrong ratio
 * would misjudge how many prompts fit in a backend's cache.
 */
export interface TokenRatio {
  charsPerToken(backend: BackendView): number;
  /** Records `chars` of prompt text routed to `backend`. */
  sent(backend: BackendView, chars: number): void;
}

const MIN_TOKENS = 20_000;

export function createTokenRatio(defaultCharsPerToken: number): TokenRatio {
  const state = new Map<string, { baseTokens: number; chars: number; ratio: number }>();
  return {
    charsPerToken(backend) {
      const s = state.get(backend.id);
      if (!s) return defaultCharsPerToken;
      const now = backend.metrics?.promptTokensTotal;
      if (now !== undefined && now < s.baseTokens) {
        state.delete(backend.id); // the server restarted: start over
        return defaultCharsPerToken;
      }
      if (now !== undefined && now - s.baseTokens >= MIN_TOKENS) {
        const measured = s.chars / (now - s.baseTokens);
        if (measured >= 1 && measured <= 12) s.ratio = measured;
      }
      return s.ratio;
    },
    sent(backend, chars) {
      let s = state.get(backend.id);
      if (!s) {
        const base = backend.metrics?.promptTokensTotal;
        if (base === undefined) return;
        state.set(backend.id, (s = { baseTokens: base, chars: 0, ratio: defaultCharsPerToken }));
      }
      s.chars += chars;
    },
  };
}
