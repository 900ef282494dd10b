/**
 * Token ids of recently seen prompt segments (the text between two added tokens: one chat
 * message, a system prompt), least recently used out first, bounded by the characters held.
 * Shared system prompts and the earlier turns of a conversation are encoded once, not on every
 * request.
 */
export interface SegmentCache {
  encode(segment: string): Uint32Array;
  /** Whether encoding `segment` costs next to nothing: it is cached, or short. */
  isCheap(segment: string): boolean;
  /** `chars`: held, with each entry's overhead. */
  stats(): { segments: number; chars: number; hits: number; misses: number };
}

/**
 * Shorter segments count as cheap when the reader decides how far to read (token-reader.ts),
 * though they are cached too: the tokenizer costs some 25 us a call before its first character
 * (normalizer, pre-tokenizer, post-processor), a lookup under a microsecond, and a conversation
 * ends each message with a short piece (a cached 13-message conversation: 135-145 us to read,
 * 32-52 with them cached; bench/tokenize-read.ts).
 */
const SHORT_CHARS = 48;
/** What an entry costs beyond its characters (map slot, key and ids headers), counted against the budget in characters. */
const ENTRY_OVERHEAD_CHARS = 32;

export function createSegmentCache(encode: (text: string) => Uint32Array, maxChars: number): SegmentCache {
  // Each entry keeps its own key: re-inserted under the segment just asked for, a slice of a
  // rendered prompt, the map would keep that whole prompt alive.
  const entries = new Map<string, { key: string; ids: Uint32Array }>();
  let chars = 0;
  let hits = 0;
  let misses = 0;
  return {
    encode(segment) {
      if (segment.length === 0 || segment.length > maxChars) return encode(segment);
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
      chars += segment.length + ENTRY_OVERHEAD_CHARS;
      for (const [oldest] of entries) {
        if (chars <= maxChars) break;
        entries.delete(oldest);
        chars -= oldest.length + ENTRY_OVERHEAD_CHARS;
      }
      return ids;
    },
    isCheap: (segment) => segment.length < SHORT_CHARS || entries.has(segment),
    stats: () => ({ segments: entries.size, chars, hits, misses }),
  };
}
