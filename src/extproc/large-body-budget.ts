/**
 * How many bytes of large request bodies Envoy may hold at once. Envoy buffers each body whole
 * (for routing and retries) until its response ends, so a burst of large uploads is a burst of
 * memory that no heap threshold sees coming: every request's headers arrive before its body.
 * Envoy's large-body filter sends the router the headers first; the router admits the body
 * against this budget by its content-length, or refuses it before a byte of it is buffered.
 */
export interface LargeBodyBudget {
  /** Reserves `bytes` within `limit`; the release, or undefined when they do not fit. */
  admit(bytes: number, limit: number): (() => void) | undefined;
  /** Bytes reserved now. */
  inUse(): number;
}

export function createLargeBodyBudget(): LargeBodyBudget {
  let inUse = 0;
  return {
    admit(bytes, limit) {
      if (inUse + bytes > limit) return undefined;
      inUse += bytes;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        inUse -= bytes;
      };
    },
    inUse: () => inUse,
  };
}
