import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { encodeBatch, sequenceFrame, wireBlockHash, type KvWireEvent } from '../../simulator/kv-events-wire.js';
import { decodeBatch, END_OF_REPLAY, KvWireError, readSequence, sequenceBytes } from './wire.js';

const events: KvWireEvent[] = [
  { type: 'BlockStored', blockHashes: [11, 12], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 2 },
  { type: 'BlockStored', blockHashes: [13], parentBlockHash: 12, tokenIds: [5, 6], blockSize: 2 },
  { type: 'BlockRemoved', blockHashes: [11] },
  { type: 'AllBlocksCleared' },
];

describe('KV event wire format', () => {
  for (const encoding of ['maps', 'arrays'] as const) {
    it(`decodes a batch of every event type (${encoding}, as the simulator and vLLM write it)`, () => {
      const batch = decodeBatch(encodeBatch(1733500000.25, events, encoding, 1));
      expect(batch.timestampS).toBe(1733500000.25);
      expect(batch.dataParallelRank).toBe(1);
      expect(batch.events).toEqual([
        { type: 'stored', blockHashes: [wireBlockHash(11), wireBlockHash(12)], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 2, lora: null },
        { type: 'stored', blockHashes: [wireBlockHash(13)], parentBlockHash: wireBlockHash(12), tokenIds: [5, 6], blockSize: 2, lora: null },
        { type: 'removed', blockHashes: [wireBlockHash(11)] },
        { type: 'cleared' },
      ]);
    });
  }

  it('keeps hashes above 2^53 and 2^63 exact, and small ones msgpack packs as plain integers', () => {
    const big = (1n << 64n) - 3n;
    const payload = encode([0.5, [{ type: 'BlockRemoved', block_hashes: [big, 7n, 7] }], 0], { useBigInt64: true });
    expect(decodeBatch(payload).events).toEqual([{ type: 'removed', blockHashes: [big, 7n, 7n] }]);
  });

  it('reads the adapter a block belongs to, and skips event types it does not know', () => {
    const payload = encode([1, [['BlockStored', [1], null, [9, 9], 2, 'sql-adapter', 'GPU'], { type: 'SomethingNew', x: 1 }], 0]);
    const batch = decodeBatch(payload);
    expect(batch.events).toHaveLength(1);
    expect(batch.events[0]).toMatchObject({ type: 'stored', lora: 'sql-adapter' });
  });

  it('refuses what is not a batch of events, saying what it got', () => {
    expect(() => decodeBatch(new Uint8Array([0xc1]))).toThrow(KvWireError);
    expect(() => decodeBatch(encode({ not: 'a batch' }))).toThrow(/expected \[timestamp, \[events...\], rank\]/);
    expect(() => decodeBatch(encode([1, [['BlockStored', [1, 2], null, [1, 2, 3], 2, null, 'GPU']], 0]))).toThrow(/3 token ids for 2 blocks of 2/);
    expect(() => decodeBatch(encode([1, [{ type: 'BlockRemoved', block_hashes: ['x'] }], 0]))).toThrow(/BlockRemoved.block_hashes/);
  });

  it('reads sequence frames as vLLM writes them, -1 ending a replay', () => {
    expect(readSequence(sequenceFrame(42))).toBe(42n);
    expect(readSequence(sequenceFrame(-1))).toBe(END_OF_REPLAY);
    expect(readSequence(sequenceBytes(1n << 40n))).toBe(1n << 40n);
    expect(() => readSequence(new Uint8Array(4))).toThrow(/4 bytes/);
  });
});
