import type { KvEvent } from '../../fleet/kv-events/wire.js';
import { fold } from './prompt-blocks.js';

/**
 * What each backend's KV cache holds, as the backend itself reports it (vLLM's KV events),
 * keyed on token ids: vLLM's own block hashes are seeded per process and cannot be computed
 * outside it, so each stored block is re-keyed here by chaining its tokens onto its parent's
 * key, the same way a request's tokens are keyed (tokenBlockKeys). A map from the engine's
 * hash to that key per (backend, data-parallel rank) resolves BlockRemoved, which carries
 * hashes only.
 */

/** Key of a chain's first parent: per adapter, since an adapter's KV blocks are its own. */
function rootKey(lora: string | null): number {
  if (lora === null) return 0;
  let a = 0x811c9dc5;
  let b = 0x5bd1e995;
  for (let i = 0; i < lora.length; i++) {
    a = Math.imul(a ^ lora.charCodeAt(i), 0x01000193);
    b = Math.imul(b ^ lora.charCodeAt(i), 0x5bd1e995);
  }
  return fold(a, b);
}

/** One block's key: its tokens chained onto the key of the block before it. */
function chain(parent: number, tokens: ArrayLike<number>, start: number, end: number): number {
  let a = (parent >>> 0) ^ 0x811c9dc5;
  let b = (Math.floor(parent / 4294967296) >>> 0) ^ 0x5bd1e995;
  for (let i = start; i < end; i++) {
    const t = tokens[i]! | 0;
    a = Math.imul(a ^ t, 0x01000193);
    a ^= a >>> 15;
    b = Math.imul(b ^ t, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return fold(a, b);
}

/** Chained keys of a prompt's full blocks of `blockSize` tokens, as the index keys stored blocks. */
export function tokenBlockKeys(tokens: ArrayLike<number>, blockSize: number, lora: string | null = null): Float64Array {
  const count = Math.floor(tokens.length / blockSize);
  const keys = new Float64Array(count);
  let key = rootKey(lora);
  for (let i = 0; i < count; i++) keys[i] = key = chain(key, tokens, i * blockSize, (i + 1) * blockSize);
  return keys;
}

interface BackendCache {
  /** Per data-parallel rank: engine hash -> our key. */
  ranks: Map<number, Map<bigint, number>>;
  /** Our key -> how many (rank, engine hash) entries hold it. */
  held: Map<number, number>;
  blockSize: number | undefined;
  /** Stored blocks whose parent the index did not know (an event it never saw): not indexed. */
  orphans: number;
}

export interface PreciseIndex {
  apply(backend: string, rank: number, event: KvEvent): void;
  /** Forgets what a backend (or one of its ranks) holds: its publisher restarted, or its events cannot be trusted. */
  clear(backend: string, rank?: number): void;
  /** Leading blocks of `keys` (tokenBlockKeys at this backend's block size) that it holds. */
  match(backend: string, keys: Float64Array): number;
  /** Its block size, once an event told it. */
  blockSize(backend: string): number | undefined;
  /** Blocks it holds, and stored blocks not indexed because their parent was unknown. */
  stats(backend: string): { blocks: number; orphans: number };
  retain(keep: ReadonlySet<string>): void;
}

export function createPreciseIndex(): PreciseIndex {
  const caches = new Map<string, BackendCache>();
  const cacheOf = (id: string) => {
    let c = caches.get(id);
    if (!c) caches.set(id, (c = { ranks: new Map(), held: new Map(), blockSize: undefined, orphans: 0 }));
    return c;
  };
  const release = (c: BackendCache, key: number) => {
    const n = c.held.get(key) ?? 0;
    if (n <= 1) c.held.delete(key);
    else c.held.set(key, n - 1);
  };

  return {
    apply(backend, rank, event) {
      const c = cacheOf(backend);
      let engine = c.ranks.get(rank);
      if (!engine) c.ranks.set(rank, (engine = new Map()));
      switch (event.type) {
        case 'stored': {
          c.blockSize = event.blockSize;
          let key = event.parentBlockHash === null ? rootKey(event.lora) : engine.get(event.parentBlockHash);
          if (key === undefined) {
            c.orphans += event.blockHashes.length;
            return;
          }
          for (let i = 0; i < event.blockHashes.length; i++) {
            key = chain(key, event.tokenIds, i * event.blockSize, (i + 1) * event.blockSize);
            const hash = event.blockHashes[i]!;
            const previous = engine.get(hash);
            if (previous === key) continue;
            if (previous !== undefined) release(c, previous);
            engine.set(hash, key);
            c.held.set(key, (c.held.get(key) ?? 0) + 1);
          }
          return;
        }
        case 'removed':
          for (const hash of event.blockHashes) {
            const key = engine.get(hash);
            if (key === undefined) continue;
            engine.delete(hash);
            release(c, key);
          }
          return;
        case 'cleared':
          for (const key of engine.values()) release(c, key);
          engine.clear();
          return;
      }
    },
    clear(backend, rank) {
      const c = caches.get(backend);
      if (!c) return;
      for (const [r, engine] of c.ranks) {
        if (rank !== undefined && r !== rank) continue;
        for (const key of engine.values()) release(c, key);
        engine.clear();
      }
    },
    match(backend, keys) {
      const held = caches.get(backend)?.held;
      if (!held) return 0;
      let n = 0;
      while (n < keys.length && held.has(keys[n]!)) n++;
      return n;
    },
    blockSize: (backend) => caches.get(backend)?.blockSize,
    stats(backend) {
      const c = caches.get(backend);
      return { blocks: c?.held.size ?? 0, orphans: c?.orphans ?? 0 };
    },
    retain(keep) {
      for (const id of caches.keys()) if (!keep.has(id)) caches.delete(id);
    },
  };
}
