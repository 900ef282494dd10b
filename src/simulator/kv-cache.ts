/**
 * Paged KV cache with automatic prefix caching, after vLLM V1's BlockPool: a fixed pool of
 * blocks, reference counts, a hash -> block map of full blocks, and an LRU free queue whose
 * blocks keep their hash (and stay reusable) until they are handed out again.
 */
import { EventEmitter } from 'node:events';

/** Shape of vLLM's BlockStored KV event. */
export interface BlockStoredEvent {
  blockHashes: number[];
  parentBlockHash: number | null;
  tokenIds: number[];
  blockSize: number;
  /** The LoRA adapter the blocks were computed with; none for the base model. */
  lora?: string | null;
}

/** Shape of vLLM's BlockRemoved KV event. */
export interface BlockRemovedEvent {
  blockHashes: number[];
}

export interface KvEventMap {
  stored: [BlockStoredEvent];
  removed: [BlockRemovedEvent];
  /** The whole prefix cache was dropped (vLLM's AllBlocksCleared). */
  cleared: [];
}

export type KvEvents = EventEmitter<KvEventMap>;

export interface KvCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly events: KvEvents;
  numFreeBlocks(): number;
  /** Fraction of blocks referenced by requests (vllm:kv_cache_usage_perc). */
  usage(): number;
  /** Cached blocks matching the longest prefix of `hashes`, at most maxBlocks of them. */
  findPrefix(hashes: readonly number[], maxBlocks: number): number[];
  /**
   * Takes `reused` (cached blocks found by findPrefix) plus `count` fresh blocks, or returns
   * null, changing nothing, when the free queue cannot supply them.
   */
  allocate(count: number, reused?: readonly number[]): number[] | null;
  /** Drops one reference to each block; unreferenced blocks join the free queue, tail first. */
  free(blocks: readonly number[]): void;
  /** Records that `blockId` now holds the full block with this hash; true if newly cached. */
  cacheBlock(blockId: number, hash: number): boolean;
  isCached(hash: number): boolean;
  numCachedBlocks(): number;
  /**
   * Forgets every cached block, as vLLM's reset_prefix_cache: refused (false, nothing
   * changed) while any block is referenced by a request.
   */
  resetPrefixCache(): boolean;
}

export function createKvCache(options: { numBlocks: number; blockSize: number }): KvCache {
  const { numBlocks, blockSize } = options;
  const events: KvEvents = new EventEmitter<KvEventMap>();
  const refCount = new Int32Array(numBlocks);
  const blockHash = new Float64Array(numBlocks).fill(-1);
  const hashToBlock = new Map<number, number>();

  // Doubly linked free queue; index numBlocks is the sentinel.
  const head = numBlocks;
  const next = new Int32Array(numBlocks + 1);
  const prev = new Int32Array(numBlocks + 1);
  const inQueue = new Uint8Array(numBlocks);
  let numFree = 0;

  function pushTail(block: number): void {
    const last = prev[head] as number;
    next[last] = block;
    prev[block] = last;
    next[block] = head;
    prev[head] = block;
    inQueue[block] = 1;
    numFree++;
  }

  function unlink(block: number): void {
    const p = prev[block] as number;
    const n = next[block] as number;
    next[p] = n;
    prev[n] = p;
    inQueue[block] = 0;
    numFree--;
  }

  next[head] = head;
  prev[head] = head;
  for (let b = 0; b < numBlocks; b++) pushTail(b);

  function evict(block: number, removed: number[]): void {
    const hash = blockHash[block] as number;
    if (hash < 0) return;
    blockHash[block] = -1;
    if (hashToBlock.get(hash) === block) {
      hashToBlock.delete(hash);
      removed.push(hash);
    }
  }

  return {
    numBlocks,
    blockSize,
    events,
    numFreeBlocks: () => numFree,
    usage: () => (numBlocks - numFree) / numBlocks,
    findPrefix(hashes, maxBlocks) {
      const found: number[] = [];
      const limit = Math.min(hashes.length, maxBlocks);
      for (let i = 0; i < limit; i++) {
        const block = hashToBlock.get(hashes[i] as number);
        if (block === undefined) break;
        found.push(block);
      }
      return found;
    },
    allocate(count, reused = []) {
      let reusedFree = 0;
      for (const block of reused) if (refCount[block] === 0) reusedFree++;
      if (count + reusedFree > numFree) return null;
      for (const block of reused) {
        if (inQueue[block]) unlink(block);
        refCount[block] = (refCount[block] as number) + 1;
      }
      const fresh: number[] = [];
      const removed: number[] = [];
      for (let i = 0; i < count; i++) {
        const block = next[head] as number;
        unlink(block);
        evict(block, removed);
        refCount[block] = 1;
        fresh.push(block);
      }
      if (removed.length > 0 && events.listenerCount('removed') > 0) events.emit('removed', { blockHashes: removed });
      return fresh;
    },
    free(blocks) {
      // Tail blocks of a sequence are the least likely to be shared: queue them first.
      for (let i = blocks.length - 1; i >= 0; i--) {
        const block = blocks[i] as number;
        const count = (refCount[block] as number) - 1;
        refCount[block] = count;
        if (count === 0) pushTail(block);
        else if (count < 0) throw new Error(`KV block ${block} freed more often than allocated`);
      }
    },
    cacheBlock(blockId, hash) {
      if ((blockHash[blockId] as number) >= 0) return false;
      blockHash[blockId] = hash;
      if (hashToBlock.has(hash)) return false; // same content computed twice concurrently
      hashToBlock.set(hash, blockId);
      return true;
    },
    isCached: (hash) => hashToBlock.has(hash),
    numCachedBlocks: () => hashToBlock.size,
    resetPrefixCache() {
      if (numFree !== numBlocks) return false;
      hashToBlock.clear();
      blockHash.fill(-1);
      events.emit('cleared');
      return true;
    },
  };
}
