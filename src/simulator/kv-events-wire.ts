/**
 * vLLM's KV event wire format: msgpack payloads `[ts, [events...], data_parallel_rank]` and
 * 8-byte big-endian sequence frames, as vllm/distributed/kv_events.py writes them with msgspec.
 *
 * Two event encodings:
 *  - maps (vLLM 0.32): tagged maps, `{"type": "BlockStored", "block_hashes": [...], ...}`, with
 *    the fields msgspec writes for a struct with omit_defaults (None defaults left out);
 *  - arrays (vLLM 0.10/0.11): positional arrays, type name first,
 *    `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium]`.
 */
import { encode } from '@msgpack/msgpack';

export type KvEventEncoding = 'maps' | 'arrays';
export const KV_EVENT_ENCODINGS: readonly KvEventEncoding[] = ['maps', 'arrays'];

/** One event as the engine reports it, block hashes being the simulator's own. */
export type KvWireEvent =
  | { type: 'BlockStored'; blockHashes: readonly number[]; parentBlockHash: number | null; tokenIds: readonly number[]; blockSize: number; lora?: string | null }
  | { type: 'BlockRemoved'; blockHashes: readonly number[] }
  | { type: 'AllBlocksCleared' };

const MEDIUM_GPU = 'GPU';
const UINT64_MASK = (1n << 64n) - 1n;

/**
 * The simulator's 53-bit block hash as the unsigned 64-bit integer vLLM would send: vLLM's are
 * the low 8 bytes of a sha256, spread over the whole uint64 range, so a consumer must cope with
 * values above 2^53 and 2^63. A bijective mix (splitmix64's finaliser) keeps distinct hashes
 * distinct and the parent links intact.
 */
export function wireBlockHash(hash: number): bigint {
  let z = BigInt(hash) & UINT64_MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & UINT64_MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & UINT64_MASK;
  return z ^ (z >> 31n);
}

/** A stable positive id per adapter name, as vLLM numbers the adapters it loads. */
function loraId(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) >>> 0;
  return (h % 1_000_000) + 1;
}

/** The event as a plain value in the chosen encoding, ready for msgpack. */
export function encodeEvent(event: KvWireEvent, encoding: KvEventEncoding): unknown {
  switch (event.type) {
    case 'BlockStored': {
      const hashes = event.blockHashes.map(wireBlockHash);
      const parent = event.parentBlockHash === null ? null : wireBlockHash(event.parentBlockHash);
      const tokenIds = [...event.tokenIds];
      const lora = event.lora ?? null;
      // Older vLLM sends only the adapter's id; this one has none to give, so it sends its name.
      if (encoding === 'arrays') return ['BlockStored', hashes, parent, tokenIds, event.blockSize, lora, MEDIUM_GPU];
      return {
        type: 'BlockStored',
        block_hashes: hashes,
        parent_block_hash: parent,
        token_ids: tokenIds,
        block_size: event.blockSize,
        lora_id: lora === null ? null : loraId(lora),
        medium: MEDIUM_GPU,
        lora_name: lora,
        // One entry per block; null for a block with no multimodal input, LoRA or cache salt.
        extra_keys: hashes.map(() => (lora === null ? null : [lora])),
        group_idx: 0,
        kv_cache_spec_kind: 'full_attention',
      };
    }
    case 'BlockRemoved': {
      const hashes = event.blockHashes.map(wireBlockHash);
      if (encoding === 'arrays') return ['BlockRemoved', hashes, MEDIUM_GPU];
      return { type: 'BlockRemoved', block_hashes: hashes, medium: MEDIUM_GPU, group_idx: 0 };
    }
    case 'AllBlocksCleared':
      return encoding === 'arrays' ? ['AllBlocksCleared'] : { type: 'AllBlocksCleared' };
  }
}

/**
 * The msgpack payload of one batch. The outer array is written by hand so that the timestamp
 * is always a float64, as Python's float is, even when it happens to be a whole number.
 */
export function encodeBatch(tsSeconds: number, events: readonly KvWireEvent[], encoding: KvEventEncoding, dataParallelRank = 0): Uint8Array {
  const body = encode(
    events.map((e) => encodeEvent(e, encoding)),
    { useBigInt64: true },
  );
  const rank = encode(dataParallelRank);
  const out = new Uint8Array(1 + 9 + body.length + rank.length);
  out[0] = 0x93; // fixarray of 3
  out[1] = 0xcb; // float64
  new DataView(out.buffer).setFloat64(2, tsSeconds);
  out.set(body, 10);
  out.set(rank, 10 + body.length);
  return out;
}

/** A sequence number as the 8-byte big-endian frame vLLM sends (signed, for the -1 marker). */
export function sequenceFrame(seq: number | bigint): Buffer {
  const frame = Buffer.alloc(8);
  frame.writeBigInt64BE(BigInt(seq));
  return frame;
}

/** Replay's end marker: sequence -1, empty payload. */
export const END_OF_REPLAY_SEQUENCE = sequenceFrame(-1);

/** A replay request's start sequence: vLLM reads the frame as an unsigned big-endian integer. */
export function readStartSequence(frame: Uint8Array): bigint {
  let value = 0n;
  for (const byte of frame) value = (value << 8n) | BigInt(byte);
  return value;
}
