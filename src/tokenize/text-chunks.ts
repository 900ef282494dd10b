/**
 * Where a long stretch of text may be cut so that its pieces, encoded one by one, give the
 * ids of encoding it whole: before a space that ends a word and starts the next one
 * ("one| two"). Byte-level BPE pre-tokenizers (GPT-2's, Llama 3's, Qwen's) never join
 * across that point. Whether a model's tokenizer is one of them is checked at load
 * (cutsCleanly), not assumed.
 */

/** Characters a piece reaches before it is cut at the next clean point: some 120 tokens of English prose. */
export const CHUNK_CHARS = 512;
/**
 * The first pieces of a text are shorter (64, 128, 256 characters, then CHUNK_CHARS): a prompt
 * that nobody holds is read no further than its first piece, so that piece is all it costs.
 */
const FIRST_CHUNK_CHARS = 64;

/** The size the `index`th piece of a text reaches before it is cut. */
export function chunkSize(index: number): number {
  return index >= 3 ? CHUNK_CHARS : FIRST_CHUNK_CHARS << index;
}

const CUT = /(?<=\S) (?=\p{L})/gu;

/**
 * The end of the piece of `text` that starts at `start`: the first clean cut at least `size`
 * characters on, or the end of the text. A function of the text up to the cut only, so two
 * prompts that open alike are cut alike, and their shared pieces are encoded once.
 */
export function chunkEnd(text: string, start: number, size = CHUNK_CHARS): number {
  if (text.length - start <= size) return text.length;
  CUT.lastIndex = start + size;
  const found = CUT.exec(text);
  return found ? found.index : text.length;
}

/** Prose, numbers, punctuation runs, several scripts, whitespace of every kind. */
const PROBE =
  'Hello world, this is   a test.\n\nNew paragraph: 123 apples and 4567 pears; "quoted words" (in parens) - dash, ' +
  "it's done: x y z.\tTabbed words\u00a0and nbsp. Ünïcödé wörds, 日本語 テキスト and émoji 🎉 here! " +
  'Über straße ĲSSEL ǅemal. code_snake camelCase URL https://example.com/a?b=c  double  spaces\r\nend';

/** Whether `encode` gives the same ids for the probe cut at every clean point as for the probe whole. */
export function cutsCleanly(encode: (text: string) => readonly number[]): boolean {
  const whole = encode(PROBE).join();
  const pieces: number[] = [];
  let start = 0;
  while (start < PROBE.length) {
    const end = chunkEnd(PROBE, start, 1);
    pieces.push(...encode(PROBE.slice(start, end)));
    start = end;
  }
  return pieces.join() === whole;
}
