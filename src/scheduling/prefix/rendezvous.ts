/**
 * Rendezvous (highest random weight) hashing: every router replica that sees the same prompt
 * prefix and the same backends names the same "home" backend for it, without talking to the
 * others. The cost scorer leans each prompt toward its home, so replicas (and a restarted
 * replica, whose index starts empty) do not scatter a shared prompt over the fleet because
 * each guessed on its own; when its home is busy, they spill it in the same order too. A
 * backend leaving moves only the prefixes it was home to.
 */
import { mix } from './prompt-blocks.js';

const idHashes = new Map<string, number>();

/** FNV-1a over the id's UTF-16 code units, finished with MurmurHash3's mixer. */
function hashId(id: string): number {
  let h = idHashes.get(id);
  if (h !== undefined) return h;
  h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h = mix(h);
  if (idHashes.size > 4096) idHashes.clear(); // ids churn with discovery: keep the memo bounded
  idHashes.set(id, h);
  return h;
}

/** Every id's weight for a key (any finite number, e.g. a block hash): the larger, the more it is the key's home. */
function weight(key: number, id: string): number {
  const h = hashId(id);
  const low = key >>> 0;
  const high = Math.floor(key / 4294967296) >>> 0;
  return mix(mix(low ^ h) ^ high ^ Math.imul(h, 0x9e3779b1));
}

/**
 * Each id's rank for a key, 0 for its home, 1 for where it goes when the home is full, and so
 * on. Depends only on the key and the set of ids (ties, rare, go to the smaller id).
 */
export function rendezvousRanks(key: number, ids: readonly string[]): Int32Array {
  const weights = ids.map((id) => weight(key, id));
  const order = ids.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]! || (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0));
  const ranks = new Int32Array(ids.length);
  order.forEach((index, rank) => (ranks[index] = rank));
  return ranks;
}
