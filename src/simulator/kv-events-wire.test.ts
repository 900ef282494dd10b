import { decode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { encodeBatch, END_OF_REPLAY_SEQUENCE, readStartSequence, sequenceFrame, wireBlockHash } from './kv-events-wire.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('KV event wire format', () => {
  it('maps the simulator hashes one to one onto the whole uint64 range', () => {
    const hashes = Array.from({ length: 256 }, (_, i) => wireBlockHash(i * 7919));
    expect(new Set(hashes).size).toBe(256);
    for (const h of hashes) expect(h >= 0n && h < 1n << 64n).toBe(true);
    expect(hashes.some((h) => h >= 1n << 63n)).toBe(true);
    expect(hashes.filter((h) => h > BigInt(Number.MAX_SAFE_INTEGER)).length).toBeGreaterThan(200);
    expect(wireBlockHash(12345)).toBe(wireBlockHash(12345));
  });

  it('writes block hashes as msgpack uint64 and the timestamp as float64, even a whole one', () => {
    const payload = encodeBatch(1_700_000_000, [{ type: 'BlockRemoved', blockHashes: [42] }], 'arrays');
    const wire = wireBlockHash(42);
    const hashBytes = Buffer.alloc(8);
    hashBytes.writeBigUInt64BE(wire);
    // [ts, [["BlockRemoved", [hash], "GPU"]], 0]
    expect(hex(payload)).toBe(
      '93' + 'cb' + hex(new Uint8Array(new Float64Array([1_700_000_000]).buffer).reverse()) +
        '91' + '93' + 'ac' + hex(Buffer.from('BlockRemoved')) + '91' + 'cf' + hex(hashBytes) + 'a3' + hex(Buffer.from('GPU')) +
        '00',
    );
    expect(decode(payload, { useBigInt64: true })).toEqual([1_700_000_000, [['BlockRemoved', [wire], 'GPU']], 0]);
  });

  it('encodes each event type in both encodings, with msgspec field order', () => {
    const events = [
      { type: 'BlockStored' as const, blockHashes: [1, 2], parentBlockHash: 7, tokenIds: [5, 6, 7, 8], blockSize: 2 },
      { type: 'BlockRemoved' as const, blockHashes: [2] },
      { type: 'AllBlocksCleared' as const },
    ];
    const [h1, h2, parent] = [wireBlockHash(1), wireBlockHash(2), wireBlockHash(7)];
    const maps = decode(encodeBatch(1.5, events, 'maps'), { useBigInt64: true }) as [number, object[], number];
    expect(maps[1]).toEqual([
      {
        type: 'BlockStored', block_hashes: [h1, h2], parent_block_hash: parent, token_ids: [5, 6, 7, 8], block_size: 2,
        lora_id: null, medium: 'GPU', lora_name: null, extra_keys: [null, null], group_idx: 0, kv_cache_spec_kind: 'full_attention',
      },
      { type: 'BlockRemoved', block_hashes: [h2], medium: 'GPU', group_idx: 0 },
      { type: 'AllBlocksCleared' },
    ]);
    expect(maps[1].map((e) => Object.keys(e)[0])).toEqual(['type', 'type', 'type']);
    const arrays = decode(encodeBatch(1.5, events, 'arrays'), { useBigInt64: true }) as [number, unknown[], number];
    expect(arrays).toEqual([
      1.5,
      [['BlockStored', [h1, h2], parent, [5, 6, 7, 8], 2, null, 'GPU'], ['BlockRemoved', [h2], 'GPU'], ['AllBlocksCleared']],
      0,
    ]);
  });

  it('frames sequence numbers as 8 bytes big-endian, -1 marking the end of a replay', () => {
    expect(hex(sequenceFrame(0))).toBe('0000000000000000');
    expect(hex(sequenceFrame(258))).toBe('0000000000000102');
    expect(hex(END_OF_REPLAY_SEQUENCE)).toBe('ffffffffffffffff');
    expect(readStartSequence(sequenceFrame(258))).toBe(258n);
    expect(readStartSequence(Buffer.from([1, 0]))).toBe(256n);
    expect(readStartSequence(END_OF_REPLAY_SEQUENCE)).toBe((1n << 64n) - 1n);
  });
});
