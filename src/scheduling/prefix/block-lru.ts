/**
 * A bounded least-recently-used set of block hashes in typed arrays: an open-addressing table
 * (linear probing) over slots linked into a recency list. Touching a block is a probe and a
 * few index writes, with no per-entry objects for the garbage collector: a 100k-token prompt
 * touches thousands of blocks per request.
 */
export class BlockLru {
  private keys: Float64Array;
  private newer: Int32Array;
  private older: Int32Array;
  /** slot + 1 per bucket; 0 is empty. */
  private table: Int32Array;
  private mask: number;
  /** Most and least recently used slots, -1 when empty. */
  private newest = -1;
  private oldest = -1;
  size = 0;

  constructor(
    private maxSize: number,
    initialSlots = 1024,
  ) {
    const slots = Math.max(1, Math.min(maxSize, initialSlots));
    this.keys = new Float64Array(slots);
    this.newer = new Int32Array(slots);
    this.older = new Int32Array(slots);
    this.table = new Int32Array(tableSizeFor(slots));
    this.mask = this.table.length - 1;
  }

  get capacity(): number {
    return this.maxSize;
  }

  has(hash: number): boolean {
    return this.find(hash) >= 0;
  }

  /** Every hash held, least recently used first. */
  oldestFirst(): Float64Array {
    const out = new Float64Array(this.size);
    for (let slot = this.oldest, i = 0; slot !== -1 && i < this.size; slot = this.newer[slot]!, i++) out[i] = this.keys[slot]!;
    return out;
  }

  /** Marks `hash` most recently used, adding it (and evicting the oldest when full) if new. */
  touch(hash: number): void {
    let slot = this.find(hash);
    if (slot >= 0) {
      if (slot !== this.newest) {
        this.unlink(slot);
        this.pushNewest(slot);
      }
      return;
    }
    if (this.size < this.maxSize) {
      if (this.size === this.keys.length) this.grow();
      slot = this.size++;
    } else {
      slot = this.oldest;
      this.unlink(slot);
      this.unindex(slot);
    }
    this.keys[slot] = hash;
    this.index(slot);
    this.pushNewest(slot);
  }

  /** Changes the bound, dropping the oldest entries if it shrank. */
  resize(maxSize: number): void {
    this.maxSize = Math.max(1, Math.floor(maxSize));
    if (this.size <= this.maxSize) return;
    // Keep the newest entries, oldest first, in fresh arrays: slots stay dense.
    const kept: number[] = [];
    for (let s = this.newest; s !== -1 && kept.length < this.maxSize; s = this.older[s]!) kept.push(this.keys[s]!);
    const fresh = new BlockLru(this.maxSize, kept.length);
    for (let i = kept.length - 1; i >= 0; i--) fresh.touch(kept[i]!);
    Object.assign(this, fresh);
  }

  private find(hash: number): number {
    const { table, keys, mask } = this;
    // Hashes are already uniformly mixed: their low 32 bits pick the bucket.
    for (let b = (hash >>> 0) & mask; ; b = (b + 1) & mask) {
      const slot = table[b]! - 1;
      if (slot < 0 || keys[slot] === hash) return slot;
    }
  }

  private index(slot: number): void {
    const { table, mask } = this;
    let b = (this.keys[slot]! >>> 0) & mask;
    while (table[b] !== 0) b = (b + 1) & mask;
    table[b] = slot + 1;
  }

  /** Removes a slot's bucket, shifting later buckets of the probe run back (no tombstones). */
  private unindex(slot: number): void {
    const { table, keys, mask } = this;
    let hole = (keys[slot]! >>> 0) & mask;
    while (table[hole] !== slot + 1) hole = (hole + 1) & mask;
    table[hole] = 0;
    for (let b = (hole + 1) & mask; table[b] !== 0; b = (b + 1) & mask) {
      const home = (keys[table[b]! - 1]! >>> 0) & mask;
      // Move the entry back unless its home lies cyclically in (hole, b].
      const stays = hole < b ? home > hole && home <= b : home > hole || home <= b;
      if (!stays) {
        table[hole] = table[b]!;
        table[b] = 0;
        hole = b;
      }
    }
  }

  private unlink(slot: number): void {
    const newer = this.newer[slot]!;
    const older = this.older[slot]!;
    if (newer === -1) this.newest = older;
    else this.older[newer] = older;
    if (older === -1) this.oldest = newer;
    else this.newer[older] = newer;
  }

  private pushNewest(slot: number): void {
    this.newer[slot] = -1;
    this.older[slot] = this.newest;
    if (this.newest !== -1) this.newer[this.newest] = slot;
    this.newest = slot;
    if (this.oldest === -1) this.oldest = slot;
  }

  private grow(): void {
    const slots = Math.min(this.maxSize, this.keys.length * 2);
    const widen = <T extends Float64Array | Int32Array>(from: T, to: T): T => {
      to.set(from);
      return to;
    };
    this.keys = widen(this.keys, new Float64Array(slots));
    this.newer = widen(this.newer, new Int32Array(slots));
    this.older = widen(this.older, new Int32Array(slots));
    this.table = new Int32Array(tableSizeFor(slots));
    this.mask = this.table.length - 1;
    for (let s = 0; s < this.size; s++) this.index(s);
  }
}

/** A power of two at least twice the slots, so probe runs stay short. */
function tableSizeFor(slots: number): number {
  let size = 2;
  while (size < slots * 2) size *= 2;
  return size;
}
