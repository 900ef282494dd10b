/**
 * Small, fast, deterministic hashes. Everything here is stable across processes so that two
 * simulators (or a router) given the same tokens agree on ids and block hashes.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const TWO_POW_32 = 0x1_0000_0000;

/** FNV-1a over UTF-16 code units text[start, end). */
export function fnv1a(text: string, start = 0, end = text.length): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  }
  return h >>> 0;
}

/** Murmur3 finaliser: spreads the bits of a 32-bit value. */
export function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash value a chain starts from (vLLM's NONE_HASH), here fixed rather than random per process. */
export const ROOT_BLOCK_HASH = 0;

/**
 * Chained hash of one KV block: parent block hash plus the block's token ids, like vLLM's
 * hash_block_tokens. Two 32-bit lanes give a 53-bit non-negative integer (a safe JS number).
 */
export function hashBlockTokens(parentHash: number, tokens: readonly number[], start: number, end: number): number {
  const parentLow = parentHash % TWO_POW_32;
  const parentHigh = Math.floor(parentHash / TWO_POW_32);
  let a = Math.imul(FNV_OFFSET ^ parentLow, FNV_PRIME);
  let b = fmix32(parentHigh ^ 0x9e3779b9);
  for (let i = start; i < end; i++) {
    const t = tokens[i] ?? 0;
    a = Math.imul(a ^ t, FNV_PRIME);
    b = Math.imul(b ^ t, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = fmix32(a ^ (end - start));
  b = fmix32(b ^ a);
  return (b & 0x1fffff) * TWO_POW_32 + a;
}

/** Order-sensitive 32-bit hash of a token sequence (used to derive per-prompt defaults). */
export function hashTokens(tokens: readonly number[], seed = 0): number {
  let h = fmix32(FNV_OFFSET ^ seed);
  for (const t of tokens) h = Math.imul(h ^ t, FNV_PRIME);
  return fmix32(h ^ tokens.length);
}

/** mulberry32: tiny seeded PRNG returning uint32 values. */
export function createPrng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
