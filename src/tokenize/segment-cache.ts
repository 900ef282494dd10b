/**
 * Token ids of recently seen prompt segments (the text between two added tokens: one chat
 * message, a system prompt), least recently used out first, bounded by the characters held.
 * Shared system prompts and the earlier turns of a conversation are encoded once, not on every
 * request.
 */
export interface SegmentCache {
  encode(segment: string): readonly number[];
  stats(): { segments: number; chars: number; hits: number; misses: number };
}

/** Below this a segment costs less to encode than to look up and keep. */
const MIN_CACHED_CHARS = 48;

export function createSegmentCache(encode: (text: string) => number[], maxChars: number): SegmentCache {
  const entries = new Map<string, readonly number[]>();
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
        entries.delete(segment);
        entries.set(segment, known);
        return known;
      }
      misses++;
      const ids = encode(segment);
      // A fresh copy: a slice would keep the whole rendered prompt it was cut from alive.
      entries.set(JSON.parse(JSON.stringify(segment)) as string, ids);
      chars += segment.length;
      for (const [key] of entries) {
        if (chars <= maxChars) break;
        entries.delete(key);
        chars -= key.length;
      }
      return ids;
    },
    stats: () => ({ segments: entries.size, chars, hits, misses }),
  };
}
