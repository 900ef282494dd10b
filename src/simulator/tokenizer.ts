/**
 * Deterministic stand-in for a BPE tokenizer: O(n), no vocabulary file, about one token per
 * four characters of English. Pieces are runs of up to 4 word characters, single punctuation
 * marks and runs of newlines; a space or tab before a piece is folded into it (" worl", "d").
 * Special tokens are recognised anywhere in the text, as real tokenizers do.
 */
import { fnv1a } from './hash.js';

export const VOCAB_SIZE = 32000;

export const SPECIAL_TOKENS: Readonly<Record<string, number>> = Object.freeze({
  '<|endoftext|>': 0,
  '<|im_start|>': 1,
  '<|im_end|>': 2,
});

/** Ids below this are reserved for special tokens. */
const FIRST_REGULAR_ID = 16;
const REGULAR_ID_SPAN = VOCAB_SIZE - FIRST_REGULAR_ID;
const MAX_WORD_RUN = 4;
const MAX_NEWLINE_RUN = 4;

const specialEntries = Object.entries(SPECIAL_TOKENS);

/** Last piece seen for each id, so /detokenize can answer. Bounded by VOCAB_SIZE. */
const pieceById = new Map<number, string>(specialEntries.map(([text, id]) => [id, text]));

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 11 || c === 12;
}

function isNewline(c: number): boolean {
  return c === 10 || c === 13;
}

function isWordChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || (c >= 128 && c !== 0xa0)
  );
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function specialAt(text: string, i: number): [string, number] | undefined {
  if (text.charCodeAt(i) !== 60 || text.charCodeAt(i + 1) !== 124) return undefined; // "<|"
  for (const entry of specialEntries) {
    if (text.startsWith(entry[0], i)) return entry;
  }
  return undefined;
}

function pieceId(text: string, start: number, end: number): number {
  const id = FIRST_REGULAR_ID + (fnv1a(text, start, end) % REGULAR_ID_SPAN);
  if (!pieceById.has(id)) pieceById.set(id, text.slice(start, end));
  return id;
}

/** Emits text[start, end) of blanks as pieces of at most MAX_WORD_RUN characters. */
function pushBlankRun(text: string, start: number, end: number, out: number[]): void {
  for (let s = start; s < end; s += MAX_WORD_RUN) out.push(pieceId(text, s, Math.min(end, s + MAX_WORD_RUN)));
}

export function encode(text: string): number[] {
  const out: number[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const special = specialAt(text, i);
    if (special) {
      out.push(special[1]);
      i += special[0].length;
      continue;
    }
    let start = i;
    let c = text.charCodeAt(i);
    if (isBlank(c)) {
      let j = i + 1;
      while (j < n && isBlank(text.charCodeAt(j))) j++;
      const next = j < n ? text.charCodeAt(j) : -1;
      if (next === -1 || isNewline(next) || specialAt(text, j)) {
        pushBlankRun(text, i, j, out);
        i = j;
        continue;
      }
      // The last blank joins the following piece; any before it stand alone.
      if (j - 1 > i) pushBlankRun(text, i, j - 1, out);
      start = j - 1;
      i = j;
      c = next;
    }
    let end: number;
    if (isNewline(c)) {
      end = i + 1;
      while (end < n && end - i < MAX_NEWLINE_RUN && isNewline(text.charCodeAt(end))) end++;
    } else if (isWordChar(c)) {
      end = i + 1;
      while (end < n && end - i < MAX_WORD_RUN && isWordChar(text.charCodeAt(end))) end++;
      // Never split a surrogate pair.
      if (end < n && isHighSurrogate(text.charCodeAt(end - 1))) end++;
    } else {
      end = i + 1;
      if (end < n && isHighSurrogate(c)) end++;
    }
    out.push(pieceId(text, start, end));
    i = end;
  }
  return out;
}

/** Text of one token id, or undefined for an id never produced in this process. */
export function tokenText(id: number): string | undefined {
  return pieceById.get(id);
}

export function isValidTokenId(id: unknown): id is number {
  return Number.isInteger(id) && (id as number) >= 0 && (id as number) < VOCAB_SIZE;
}

/** Inverse of encode for ids this process has produced; unknown ids decode to "". */
export function decode(ids: readonly number[], skipSpecialTokens = false): string {
  let text = '';
  for (const id of ids) {
    if (skipSpecialTokens && id < FIRST_REGULAR_ID) continue;
    text += pieceById.get(id) ?? '';
  }
  return text;
}
