/**
 * Decodes vLLM's KV cache events: each ZMQ message is `[topic, sequence, payload]`, the
 * sequence an 8-byte big-endian integer, the payload msgpack `[timestamp, [events...],
 * data_parallel_rank]` (vllm/distributed/kv_events.py). Events come in two encodings, both
 * accepted: tagged maps (vLLM 0.32: `{"type": "BlockStored", "block_hashes": [...], ...}`) and
 * positional arrays, type name first (older vLLM and other vLLM-compatible servers).
 */
import { decode } from '@msgpack/msgpack';

/** One event, as the index needs it. Engine block hashes are opaque 64-bit values. */
export type KvEvent =
  | {
      type: 'stored';
      blockHashes: bigint[];
      parentBlockHash: bigint | null;
      tokenIds: number[];
      blockSize: number;
      /** The adapter the blocks were computed for (its KV is its own), if any. */
      lora: string | null;
    }
  | { type: 'removed'; blockHashes: bigint[] }
  | { type: 'cleared' };

export interface KvEventBatch {
  timestampS: number;
  events: KvEvent[];
  dataParallelRank: number;
}

/** Sequence -1 ends a replay. */
export const END_OF_REPLAY = -1n;

/** The sequence frame as a signed 64-bit integer (vLLM writes `seq.to_bytes(8, "big")`; replay ends with -1). */
export function readSequence(frame: Uint8Array): bigint {
  if (frame.length !== 8) throw new KvWireError(`sequence frame of ${frame.length} bytes, expected 8`);
  return new DataView(frame.buffer, frame.byteOffset, 8).getBigInt64(0);
}

/** A replay request: start sequence as 8 big-endian bytes. */
export function sequenceBytes(seq: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, seq);
  return out;
}

export class KvWireError extends Error {
  override name = 'KvWireError';
}

function hash(value: unknown, what: string): bigint {
  if (typeof value === 'bigint') return BigInt.asUintN(64, value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt.asUintN(64, BigInt(value));
  // Some publishers hash to bytes (e.g. a full sha256 digest): keep the low 8 bytes, as vLLM does.
  if (value instanceof Uint8Array && value.length >= 8) return new DataView(value.buffer, value.byteOffset + value.length - 8, 8).getBigUint64(0);
  throw new KvWireError(`${what}: expected a block hash, got ${describe(value)}`);
}

function hashes(value: unknown, what: string): bigint[] {
  if (!Array.isArray(value)) throw new KvWireError(`${what}: expected a list of block hashes, got ${describe(value)}`);
  return value.map((v) => hash(v, what));
}

function tokenIds(value: unknown): number[] {
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0)) {
    throw new KvWireError(`BlockStored.token_ids: expected a list of token ids, got ${describe(value)}`);
  }
  return value as number[];
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return value === null ? 'null' : typeof value;
}

function stored(hashesRaw: unknown, parent: unknown, tokens: unknown, blockSize: unknown, lora: unknown): KvEvent {
  const blockHashes = hashes(hashesRaw, 'BlockStored.block_hashes');
  const ids = tokenIds(tokens);
  if (typeof blockSize !== 'number' || !Number.isInteger(blockSize) || blockSize < 1) {
    throw new KvWireError(`BlockStored.block_size: expected a positive integer, got ${describe(blockSize)}`);
  }
  if (ids.length !== blockHashes.length * blockSize) {
    throw new KvWireError(`BlockStored: ${ids.length} token ids for ${blockHashes.length} blocks of ${blockSize}`);
  }
  return {
    type: 'stored',
    blockHashes,
    parentBlockHash: parent === null || parent === undefined ? null : hash(parent, 'BlockStored.parent_block_hash'),
    tokenIds: ids,
    blockSize,
    lora: lora === null || lora === undefined ? null : String(lora),
  };
}

function event(raw: unknown): KvEvent | undefined {
  if (Array.isArray(raw)) {
    // ["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, ...]
    switch (raw[0]) {
      case 'BlockStored':
        return stored(raw[1], raw[2], raw[3], raw[4], raw[5]);
      case 'BlockRemoved':
        return { type: 'removed', blockHashes: hashes(raw[1], 'BlockRemoved.block_hashes') };
      case 'AllBlocksCleared':
        return { type: 'cleared' };
      default:
        return undefined; // an event type of a newer vLLM: not ours to know
    }
  }
  if (typeof raw === 'object' && raw !== null && !(raw instanceof Uint8Array)) {
    const e = raw as Record<string, unknown>;
    switch (e['type']) {
      case 'BlockStored':
        return stored(e['block_hashes'], e['parent_block_hash'], e['token_ids'], e['block_size'], e['lora_name'] ?? e['lora_id']);
      case 'BlockRemoved':
        return { type: 'removed', blockHashes: hashes(e['block_hashes'], 'BlockRemoved.block_hashes') };
      case 'AllBlocksCleared':
        return { type: 'cleared' };
      default:
        return undefined;
    }
  }
  throw new KvWireError(`expected an event (a map or a list), got ${describe(raw)}`);
}

/** Decodes one payload; throws KvWireError on anything that is not a batch of events. */
export function decodeBatch(payload: Uint8Array): KvEventBatch {
  let raw: unknown;
  try {
    raw = decode(payload, { useBigInt64: true });
  } catch (err) {
    throw new KvWireError(`not msgpack: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!Array.isArray(raw) || raw.length < 2 || !Array.isArray(raw[1])) throw new KvWireError(`expected [timestamp, [events...], rank], got ${describe(raw)}`);
  const [ts, list, rank] = raw as [unknown, unknown[], unknown];
  const events: KvEvent[] = [];
  for (const item of list) {
    const e = event(item);
    if (e) events.push(e);
  }
  return {
    timestampS: typeof ts === 'number' ? ts : Number(ts),
    events,
    dataParallelRank: typeof rank === 'number' ? rank : rank === undefined || rank === null ? 0 : Number(rank),
  };
}
