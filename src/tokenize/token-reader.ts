import type { SegmentCache } from './segment-cache.js';
import { chunkEnd, chunkSize } from './text-chunks.js';

/**
 * A prompt's token ids, encoded as far as someone asks. Routing needs them only as far as
 * some server holds the prompt: the text past that point changes no score, and encoding new
 * text costs about a microsecond a token on the router's one thread.
 */
export interface TokenReader {
  /** The ids read so far (a view that the next read may replace). */
  readonly ids: Uint32Array;
  readonly done: boolean;
  /** Reads on, up to and including the next piece of text not seen before; false when nothing was left. */
  readMore(): boolean;
  /** The whole prompt's length in tokens: exact once done, else scaled from what was read. */
  estimatedLength(): number;
  /** Every id of the prompt. */
  readAll(): Uint32Array;
}

export interface ReaderSource {
  /** The prompt cut at added tokens: text at even indexes, an added token at odd ones. */
  parts: readonly string[];
  idOf: ReadonlyMap<string, number>;
  /** Encodes a piece of text, from the cache when it was seen. */
  cache: SegmentCache;
  /** Whether long text may be cut into pieces (text-chunks.ts); else each part is encoded whole. */
  chunked: boolean;
  /** What the post-processor puts around the prompt (a BOS, say), when special tokens are asked for. */
  before: readonly number[];
  after: readonly number[];
}

/** Without a token read yet, prose runs at about this many tokens a character. */
const TOKENS_PER_CHAR_PRIOR = 0.25;

export function createTokenReader(source: ReaderSource): TokenReader {
  const { parts, idOf, cache, chunked, before, after } = source;
  let totalChars = 0;
  for (const part of parts) totalChars += part.length;
  // Ids are copied into one typed array: a plain array of that many numbers costs ten times
  // as much to fill, and a cached 8k-token prompt is all copying.
  let buffer = new Uint32Array(before.length + after.length + Math.ceil(totalChars * TOKENS_PER_CHAR_PRIOR) + 16);
  let length = 0;
  const append = (ids: ArrayLike<number>) => {
    if (length + ids.length > buffer.length) {
      const grown = new Uint32Array(Math.max(2 * buffer.length, length + ids.length));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(ids, length);
    length += ids.length;
  };
  append(before);
  let part = 0;
  let offset = 0;
  let piece = 0;
  let charsRead = 0;
  let done = false;

  const reader: TokenReader = {
    get ids() {
      return buffer.subarray(0, length);
    },
    get done() {
      return done;
    },
    readMore() {
      if (done) return false;
      let fresh = false;
      while (!fresh && part < parts.length) {
        const text = parts[part]!;
        if (part % 2 === 1) {
          append([idOf.get(text)!]);
          charsRead += text.length;
        } else if (text !== '') {
          const end = chunked ? chunkEnd(text, offset, chunkSize(piece++)) : text.length;
          const slice = offset === 0 && end === text.length ? text : text.slice(offset, end);
          fresh = !cache.isCheap(slice);
          append(cache.encode(slice));
          charsRead += end - offset;
          offset = end;
          if (end < text.length) continue;
        }
        part++;
        offset = 0;
        piece = 0;
      }
      if (part === parts.length) {
        done = true;
        append(after);
      }
      return true;
    },
    estimatedLength() {
      if (done) return length;
      const perChar = charsRead > 0 ? (length - before.length) / charsRead : TOKENS_PER_CHAR_PRIOR;
      return length + Math.ceil((totalChars - charsRead) * perChar) + after.length;
    },
    readAll() {
      while (reader.readMore());
      return reader.ids;
    },
  };
  return reader;
}
