import { decode, encode } from '@msgpack/msgpack';
import type { MessageCodec } from '../grpc/server.js';

/** The gRPC method replicas tell each other what they route on (a stream of PeerMessage, msgpack-encoded). */
export const PEER_SYNC_PATH = '/vllm_router.peers.v1.Peers/Share';

/**
 * What one router replica tells the others: who it is (first, once), each request it routes
 * (numbered by it) and each that ends; answering a peer's hello, who it is and what it thinks
 * each backend's cache holds (a replica that has just started learns the fleet's history). Enough for a
 * peer to count the request on that backend and to learn its prompt blocks there, as if it had
 * routed the request itself.
 */
export type PeerMessage =
  | { kind: 'hello'; instance: string }
  // uncachedTokens is an estimate where the prompt was not tokenized: not always whole.
  | { kind: 'routed'; id: number; backend: string; hashes: Float64Array; uncachedTokens: number; predictedTtftS: number; adapter: string | undefined; textBytes: number | undefined }
  | { kind: 'ended'; id: number }
  | { kind: 'cached'; backend: string; hashes: Float64Array };

/** Most prompt blocks a message may carry: a 1M-token prompt of 16-token blocks. */
const MAX_HASHES = 65_536;
/** Most blocks of one backend's cache view: 16M tokens of 16-token blocks (8 MiB). */
const MAX_CACHED_HASHES = 1 << 20;

export class PeerMessageError extends Error {
  override name = 'PeerMessageError';
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isAmount = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
const isName = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 256;

// On the wire each message is a msgpack array whose first element names it.
export function encodePeerMessage(m: PeerMessage): Uint8Array {
  switch (m.kind) {
    case 'hello':
      return encode(['h', m.instance]);
    case 'routed':
      return encode(['r', m.id, m.backend, hashBytes(m.hashes), m.uncachedTokens, m.predictedTtftS, m.adapter ?? null, m.textBytes ?? null]);
    case 'ended':
      return encode(['e', m.id]);
    case 'cached':
      return encode(['c', m.backend, hashBytes(m.hashes)]);
  }
}

/** Decodes and checks one message; a malformed one throws PeerMessageError and is never applied. */
export function decodePeerMessage(bytes: Uint8Array): PeerMessage {
  let value: unknown;
  try {
    value = decode(bytes);
  } catch (err) {
    throw new PeerMessageError(`not msgpack: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) throw new PeerMessageError('not a peer message');
  const [kind, ...rest] = value as unknown[];
  if (kind === 'h' && isName(rest[0])) return { kind: 'hello', instance: rest[0] };
  if (kind === 'e' && isCount(rest[0])) return { kind: 'ended', id: rest[0] };
  if (kind === 'c' && isName(rest[0]) && isHashBytes(rest[1], MAX_CACHED_HASHES)) return { kind: 'cached', backend: rest[0], hashes: hashesOf(rest[1]) };
  if (kind === 'r') {
    const [id, backend, blockBytes, uncachedTokens, predictedTtftS, adapter, textBytes] = rest;
    if (
      isCount(id) && isName(backend) && isHashBytes(blockBytes, MAX_HASHES) &&
      isAmount(uncachedTokens) && isAmount(predictedTtftS) &&
      (adapter === null || isName(adapter)) && (textBytes === null || isAmount(textBytes))
    ) {
      return { kind: 'routed', id, backend, hashes: hashesOf(blockBytes), uncachedTokens, predictedTtftS, adapter: adapter ?? undefined, textBytes: textBytes ?? undefined };
    }
  }
  throw new PeerMessageError(`malformed peer message ${JSON.stringify(kind)}`);
}

const hashBytes = (hashes: Float64Array) => new Uint8Array(hashes.buffer, hashes.byteOffset, hashes.byteLength);

const isHashBytes = (x: unknown, most: number): x is Uint8Array => x instanceof Uint8Array && x.byteLength % 8 === 0 && x.byteLength / 8 <= most;

/** Copied: the decoder's bytes may view a buffer reused for the next message, and be unaligned. */
function hashesOf(bytes: Uint8Array): Float64Array {
  const hashes = new Float64Array(bytes.byteLength / 8);
  new Uint8Array(hashes.buffer).set(bytes);
  return hashes;
}

/** The codec of the gRPC method, both ways. */
export const peerMessageCodec: MessageCodec<PeerMessage> = {
  encode: (m) => {
    const bytes = encodePeerMessage(m);
    return { finish: () => bytes };
  },
  decode: decodePeerMessage,
};
