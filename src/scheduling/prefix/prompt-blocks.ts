import type { PromptSource } from '../types.js';

/**
 * A prompt cut into fixed-size blocks, each hash chained to the previous one (as vLLM chains
 * its KV block hashes), so equal hashes at position i mean equal prompts up to block i.
 * Text is hashed as the UTF-8 bytes the client sent (the router has no tokenizer and never
 * decodes the prompt); how many bytes make a token is learned per backend (token-ratio.ts).
 */
export interface PromptBlocks {
  /** Chained block hashes; only full blocks, as in vLLM. */
  hashes: Float64Array;
  /** Prompt length in its units: bytes of text, or token ids (past what a tokenizing prompt read, estimated). */
  units: number;
  /** Units one block covers. */
  unitsPerBlock: number;
  /** True when the units are token ids (no tokenizer estimate needed). */
  exactTokens: boolean;
}

export interface BlockSettings {
  /** Bytes of prompt text per block; a multiple of 8, since text is hashed two 32-bit words at a time. */
  blockBytes: number;
  bytesPerToken: number;
  /** Token-id prompts are cut every this many ids. */
  blockTokens: number;
}

const EMPTY = new Float64Array(0);
const SEED_A = 0x811c9dc5;
const SEED_B = 0x5bd1e995;

/** Spreads every input bit over the whole word (MurmurHash3's finalizer). */
export function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Two 32-bit lanes folded into one exactly representable 53-bit number. */
export function fold(a: number, b: number): number {
  return mix(a) * 2097152 + (mix(b ^ a) >>> 11);
}

/**
 * Where a prompt's chain starts: the same for every base-model prompt, apart for each LoRA
 * adapter, whose KV blocks are its own (vLLM keys them by adapter too).
 */
export function chainSeed(adapter: string | undefined): number {
  if (adapter === undefined) return 0;
  let h = 0x9e3779b9;
  for (let i = 0; i < adapter.length; i++) h = Math.imul(h ^ adapter.charCodeAt(i), 0x01000193);
  return mix(h) || 1;
}

/** Hashes text in little-endian 32-bit words: an eighth of the steps of a two-lane byte loop. */
export function hashBytes(bytes: Uint8Array, settings: BlockSettings, seed = 0): PromptBlocks {
  const size = settings.blockBytes;
  const count = Math.floor(bytes.length / size);
  const hashes = count === 0 ? EMPTY : new Float64Array(count);
  const words = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let a = SEED_A ^ seed;
  let b = SEED_B;
  let i = 0;
  for (let block = 0; block < count; block++) {
    const end = i + size;
    // Each lane takes every other word: half the multiplications of feeding both every word,
    // and the fold below mixes the two, so a change in any word still changes the hash.
    for (; i < end; i += 8) {
      a = Math.imul(a ^ words.getInt32(i, true), 0x01000193);
      a ^= a >>> 15;
      b = Math.imul(b ^ words.getInt32(i + 4, true), 0x5bd1e995);
      b ^= b >>> 13;
    }
    // The lanes carry over into the next block: the chain includes every earlier byte.
    hashes[block] = fold(a, b);
  }
  return { hashes, units: Math.max(1, bytes.length), unitsPerBlock: size, exactTokens: false };
}

// The same chained loop as hashBytes, over ids instead of words: written twice on purpose,
// since a shared loop taking an accessor would cost a call per word on the hot path.
export function hashTokens(tokens: ArrayLike<number>, settings: BlockSettings, seed = 0): PromptBlocks {
  const size = settings.blockTokens;
  const count = Math.floor(tokens.length / size);
  const hashes = count === 0 ? EMPTY : new Float64Array(count);
  let a = SEED_A ^ seed;
  let b = SEED_B;
  let i = 0;
  for (let block = 0; block < count; block++) {
    const end = i + size;
    for (; i < end; i++) {
      const t = tokens[i]! | 0;
      a = Math.imul(a ^ t, 0x01000193);
      a ^= a >>> 15;
      b = Math.imul(b ^ t, 0x5bd1e995);
      b ^= b >>> 13;
    }
    hashes[block] = fold(a, b);
  }
  return { hashes, units: Math.max(1, tokens.length), unitsPerBlock: size, exactTokens: true };
}

export function promptBlocks(prompt: PromptSource, settings: BlockSettings, seed = 0): PromptBlocks {
  switch (prompt.kind) {
    case 'text':
      return hashBytes(prompt.bytes, settings, seed);
    case 'tokens':
      return hashTokens(prompt.tokens, settings, seed);
    case 'tokenizing':
      // Keyed on its text, whole before a token is read: its ids are matched against what servers report.
      return hashBytes(prompt.bytes, settings, seed);
    case 'none':
      return { hashes: EMPTY, units: 1, unitsPerBlock: settings.blockBytes, exactTokens: false };
  }
}
