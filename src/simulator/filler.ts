/**
 * Deterministic generated text. Every word is exactly one token of the simulated tokenizer,
 * so a reply sent back in the next turn tokenizes to the ids that were generated, and the
 * KV blocks cached while generating can serve that next turn, as on a real server.
 */
import { createPrng, hashTokens } from './hash.js';
import { encode, SPECIAL_TOKENS } from './tokenizer.js';

const WORDS = [
  'the', 'of', 'and', 'to', 'in', 'is', 'was', 'for', 'on', 'are', 'with', 'as', 'be', 'at', 'by', 'this',
  'from', 'or', 'have', 'an', 'they', 'one', 'you', 'were', 'all', 'we', 'when', 'your', 'can', 'said',
  'use', 'each', 'she', 'do', 'how', 'if', 'will', 'up', 'out', 'many', 'then', 'them', 'so', 'some',
  'her', 'make', 'like', 'him', 'into', 'time', 'has', 'look', 'two', 'more', 'go', 'see', 'no', 'way',
  'VM', 'GPU', 'KV', 'data',
];

export const MIN_DEFAULT_OUTPUT = 16;
export const MAX_DEFAULT_OUTPUT = 128;

/** Stop token chat requests end with; it is generated and counted but renders as no text. */
export const CHAT_EOS_TOKEN = SPECIAL_TOKENS['<|im_end|>'] ?? 2;
/** Stop token of plain completions. */
export const COMPLETION_EOS_TOKEN = SPECIAL_TOKENS['<|endoftext|>'] ?? 0;

interface Piece {
  id: number;
  text: string;
}

function singleToken(text: string): Piece {
  const ids = encode(text);
  const id = ids[0];
  if (ids.length !== 1 || id === undefined) throw new Error(`filler piece ${JSON.stringify(text)} is not one token`);
  return { id, text };
}

const FIRST_PIECES = WORDS.map((w) => singleToken(w.charAt(0).toUpperCase() + w.slice(1)));
const NEXT_PIECES = WORDS.map((w) => singleToken(` ${w}`));

export interface OutputPlan {
  tokenIds: number[];
  /** Text of each token, '' for the stop token. */
  texts: string[];
  finishReason: 'stop' | 'length';
}

/** Output length a request without max_tokens stops at, in [16, 128], derived from its prompt. */
export function naturalOutputLength(promptTokenIds: readonly number[], seed: number): number {
  const span = MAX_DEFAULT_OUTPUT - MIN_DEFAULT_OUTPUT + 1;
  return MIN_DEFAULT_OUTPUT + (hashTokens(promptTokenIds, seed) % span);
}

/**
 * Plans the tokens of one completion. With a stop token the last planned token is that token
 * (finish_reason "stop"); otherwise generation runs to `length` tokens (finish_reason "length").
 */
export function planOutput(
  promptTokenIds: readonly number[],
  length: number,
  stopTokenId: number | null,
  seed: number,
): OutputPlan {
  const next = createPrng(hashTokens(promptTokenIds, seed ^ 0x5eed));
  const tokenIds: number[] = new Array<number>(length);
  const texts: string[] = new Array<string>(length);
  const words = stopTokenId === null ? length : length - 1;
  for (let i = 0; i < words; i++) {
    const table = i === 0 ? FIRST_PIECES : NEXT_PIECES;
    const piece = table[next() % table.length] as Piece;
    tokenIds[i] = piece.id;
    texts[i] = piece.text;
  }
  if (stopTokenId !== null && length > 0) {
    tokenIds[length - 1] = stopTokenId;
    texts[length - 1] = '';
  }
  return { tokenIds, texts, finishReason: stopTokenId === null ? 'length' : 'stop' };
}
