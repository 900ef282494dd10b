import { BlockLru } from './block-lru.js';

/**
 * Which prompt blocks each backend most likely still holds in its KV cache: one LRU of block
 * hashes per backend, bounded by that backend's cache size. A prompt's blocks are touched
 * last-to-first, so a prompt's first blocks are the most recent and eviction takes the tail of
 * a prefix before its head, as vLLM's free-block queue does. That keeps "holds block i" implying
 * "holds every block before i", which lets a lookup binary-search the longest cached prefix.
 */
export interface PrefixIndex {
  /** Leading blocks of `hashes` that `backend` holds. */
  match(backend: string, hashes: Float64Array): number;
  /** Records that `backend` now holds these blocks. */
  record(backend: string, hashes: Float64Array): void;
  /** The blocks a backend is thought to hold, least recently used first (for another replica). */
  blocks(backend: string): Float64Array;
  /**
   * Takes another replica's view of a backend (least recently used first) where this one knows
   * nothing of it yet (it has just started); a backend it already follows keeps its own view.
   */
  absorb(backend: string, oldestFirst: Float64Array): void;
  /** Sets a backend's capacity in blocks, evicting if it shrank. */
  setCapacity(backend: string, blocks: number): void;
  /** Forgets backends not in `keep`. */
  retain(keep: ReadonlySet<string>): void;
  size(backend: string): number;
  /** Share of a backend's capacity in use, 0..1. */
  fullness(backend: string): number;
}

export function createPrefixIndex(defaultCapacityBlocks: number): PrefixIndex {
  const lrus = new Map<string, BlockLru>();

  const lruOf = (backend: string) => {
    let lru = lrus.get(backend);
    if (!lru) lrus.set(backend, (lru = new BlockLru(defaultCapacityBlocks)));
    return lru;
  };

  return {
    match(backend, hashes) {
      const lru = lrus.get(backend);
      if (!lru || hashes.length === 0 || !lru.has(hashes[0]!)) return 0;
      let lo = 1; // hashes[0..lo) held
      let hi = hashes.length; // hashes[hi..] not known to be held
      if (lru.has(hashes[hi - 1]!)) return hi;
      hi--;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (lru.has(hashes[mid]!)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    },
    record(backend, hashes) {
      if (hashes.length === 0) return;
      const lru = lruOf(backend);
      // A prompt longer than the cache leaves only its head behind: touching the rest would
      // only evict it again (thousands of evictions for a huge prompt on a small cache).
      for (let i = Math.min(hashes.length, lru.capacity) - 1; i >= 0; i--) lru.touch(hashes[i]!);
    },
    blocks: (backend) => lrus.get(backend)?.oldestFirst() ?? new Float64Array(0),
    absorb(backend, oldestFirst) {
      const lru = lruOf(backend);
      if (lru.size > 0) return;
      for (let i = Math.max(0, oldestFirst.length - lru.capacity); i < oldestFirst.length; i++) lru.touch(oldestFirst[i]!);
    },
    setCapacity(backend, capacity) {
      lruOf(backend).resize(capacity);
    },
    retain(keep) {
      for (const id of lrus.keys()) if (!keep.has(id)) lrus.delete(id);
    },
    size: (backend) => lrus.get(backend)?.size ?? 0,
    fullness(backend) {
      const lru = lrus.get(backend);
      return lru ? Math.min(1, lru.size / lru.capacity) : 0;
    },
  };
}
