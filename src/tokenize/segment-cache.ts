/**
 * Token ids of recently seen prompt segments (the text between two added tokens: one chat
 * message, a system prompt), least recently used out first, bounded by the characters held.
 * Shared system prompts and the earlier turns of a conversation are encoded once, not on every
 * request.
 */
export interface SegmentCache {
  encode(segment: string): Uint32Array;
  /** Whether encoding `segment` costs next to nothing: it is cached, or too short to be worth caching. */
  isCheap(segment: string): boolean;
  stats(): { segments: number; chars: number; hits: number; misses: number };
}

/** Below this a segment costs less to encode than to look up and keep. */
const MIN_CACHED_CHARS = 48;

export function createSegmentCache(encode: (text: string) => Uint32Array, maxChars: number): SegmentCache {
  // Each entry keeps its own key: re-inserted under the segment just asked for, a slice of a
  // rendered prompt, the map would keep that whole prompt alive.
  const entries = new Map<string, { key: string; ids: Uint32Array }>();
  let chars = 0;
  let hits = 0;
  let misses = 0;
  return {
    encode(segment) {
      if (segment.length < MIN_CACHED_CHARS || segment.length > maxChars) return encode(segment);
      const known = entries.get(segment);
      if (known) {
        hits++;
        // Re-inserted: a Map iterates in insertion order, so its first key is the least recent.
        entries.delete(known.key);
        entries.set(known.key, known);
        return known.ids;
      }
      misses++;
      const ids = encode(segment);
      // A fresh copy, for the same reason.
      const key = JSON.parse(JSON.stringify(segment)) as string;
      entries.set(key, { key, ids });
      chars += segment.length;
      for (const [oldest] of entries) {
        if (chars <= maxChars) break;
        entries.delete(oldest);
        chars -= oldest.length;
      }
      return ids;
    },
    isCheap: (segment) => segment.length < MIN_CACHED_CHARS || entries.has(segment),
    stats: () => ({ segments: entries.size, chars, hits, misses }),
  };
}
