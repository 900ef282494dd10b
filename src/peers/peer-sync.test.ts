import { afterEach, describe, expect, it } from 'vitest';
import { encode } from '@msgpack/msgpack';
import { credentials, Client } from '@grpc/grpc-js';
import type { Backend, FleetView } from '../fleet/backend.js';
import { startGrpcServer, type GrpcServer } from '../grpc/server.js';
import type { RoutedPrompt } from '../scheduling/types.js';
import { decodePeerMessage, encodePeerMessage, PEER_SYNC_PATH, PeerMessageError } from './peer-messages.js';
import { createPeerSync, type PeerSync } from './peer-sync.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** A fleet of two backends that counts what it is told, and the prompts it is taught. */
function countingFleet() {
  const backends = ['a', 'b'].map((id) => ({ id, inflight: 0, dispatched: 0 }) as unknown as Backend & { inflight: number; dispatched: number });
  const taught: Array<{ backend: string; routed: RoutedPrompt }> = [];
  const fleet = {
    backends: () => backends,
    servingModel: () => backends,
    routableModels: () => ['m'],
    dispatch(b: Backend) {
      (b as { inflight: number }).inflight++;
      (b as { dispatched: number }).dispatched++;
    },
    release(b: Backend) {
      (b as { inflight: number }).inflight--;
    },
  } as FleetView;
  return { fleet, backends, taught, remember: (b: Backend, routed: RoutedPrompt) => taught.push({ backend: b.id, routed }) };
}

const until = async (check: () => boolean, what: string) => {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

// Token counts estimated from text are not whole.
const prompt = (n: number): RoutedPrompt => ({ hashes: Float64Array.from([n, n + 0.5, -n]), uncachedTokens: 100.25 * n, predictedTtftS: 0.05 * n, adapter: n % 2 ? 'sql-lora' : undefined, textBytes: n % 2 ? 8000.5 : undefined });

describe('peer messages', () => {
  it('round-trip, hashes bit for bit', () => {
    const routed = { kind: 'routed' as const, id: 7, backend: 'server-1', ...prompt(3) };
    expect(decodePeerMessage(encodePeerMessage(routed))).toEqual(routed);
    expect(decodePeerMessage(encodePeerMessage({ kind: 'ended', id: 7 }))).toEqual({ kind: 'ended', id: 7 });
    expect(decodePeerMessage(encodePeerMessage({ kind: 'hello', instance: 'x' }))).toEqual({ kind: 'hello', instance: 'x' });
    const cached = { kind: 'cached' as const, backend: 'server-1', hashes: Float64Array.from([1.5, -2, 2 ** 52]) };
    expect(decodePeerMessage(encodePeerMessage(cached))).toEqual(cached);
  });

  it('are refused when malformed, with a reason', () => {
    expect(() => decodePeerMessage(new Uint8Array([0xc1]))).toThrow(PeerMessageError);
    expect(() => decodePeerMessage(encode({ kind: 'routed' }))).toThrow(/not a peer message/);
    expect(() => decodePeerMessage(encode(['r', -1, 'a', new Uint8Array(8), 1, 0.1, null]))).toThrow(/malformed/);
    expect(() => decodePeerMessage(encode(['r', 1, 'a', new Uint8Array(7), 1, 0.1, null]))).toThrow(/malformed/);
    expect(() => decodePeerMessage(encode(['e', 'one']))).toThrow(/malformed/);
    expect(() => decodePeerMessage(encode(['c', 'a', new Uint8Array(12)]))).toThrow(/malformed/);
    expect(() => decodePeerMessage(encode(['r', 1, 'a', new Uint8Array(8), -1, 0.1, null]))).toThrow(/malformed/);
    expect(() => decodePeerMessage(encode(['r', 1, 'a', new Uint8Array(8), 1, Number.NaN, null]))).toThrow(/malformed/);
  });
});

describe('replicas telling each other what they route', () => {
  const servers: GrpcServer[] = [];
  const syncs: PeerSync[] = [];
  afterEach(async () => {
    for (const s of syncs.splice(0)) s.close();
    await Promise.all(servers.splice(0).map((s) => s.close(0)));
  });

  async function replica(name: string, addresses: () => string[], views: Array<{ backend: string; hashes: Float64Array }> = []) {
    const counted = countingFleet();
    const absorbed: Array<{ backend: string; hashes: Float64Array }> = [];
    const sync = createPeerSync({
      instance: name,
      addresses,
      fleet: counted.fleet,
      remember: counted.remember,
      cacheViews: () => views,
      absorbCacheView: (b, hashes) => absorbed.push({ backend: b.id, hashes }),
      logger: quiet,
    });
    const server = await startGrpcServer({ host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20, methods: [sync.method] });
    servers.push(server);
    syncs.push(sync);
    return { ...counted, sync, absorbed, address: `127.0.0.1:${server.port}` };
  }

  it('counts and learns a peer\'s requests until they end, and forgets them when the peer goes', async () => {
    const list: string[] = [];
    const one = await replica('one', () => list);
    const two = await replica('two', () => list);
    list.push(one.address, two.address); // the same list for both: each ignores itself
    one.sync.reconcile();
    two.sync.reconcile();
    await until(() => one.sync.stats().outgoing.some((o) => o.self) && two.sync.stats().incoming.length === 1, 'the links');

    const endFirst = one.sync.routed(one.backends[0]!, prompt(1));
    one.sync.routed(one.backends[1]!, prompt(2));
    await until(() => two.backends[0]!.inflight === 1 && two.backends[1]!.inflight === 1, 'the routed requests');
    expect(two.taught).toEqual([
      { backend: 'a', routed: { kind: 'routed', id: 0, backend: 'a', ...prompt(1) } },
      { backend: 'b', routed: { kind: 'routed', id: 1, backend: 'b', ...prompt(2) } },
    ]);
    // Nothing comes back to the sender, and a replica never counts its own stream.
    expect(one.backends.map((b) => b.dispatched)).toEqual([0, 0]);

    endFirst();
    endFirst(); // once only
    await until(() => two.backends[0]!.inflight === 0, 'the end');
    expect(two.backends[1]!.inflight).toBe(1);

    // The sender goes away: its requests stop counting at the peer.
    one.sync.close();
    await until(() => two.backends[1]!.inflight === 0, 'the peer gone');
    expect(two.sync.stats().incoming).toEqual([]);
  });

  it('drops a peer the config no longer lists, for good', async () => {
    const list: string[] = [];
    const two = await replica('two', () => []);
    const one = await replica('one', () => list);
    list.push(two.address);
    one.sync.reconcile();
    await until(() => two.sync.stats().incoming.length === 1, 'the link');
    list.length = 0;
    one.sync.reconcile();
    await until(() => two.sync.stats().incoming.length === 0, 'the link closed');
    await new Promise((r) => setTimeout(r, 400)); // beyond the first reconnect delays
    expect(two.sync.stats().incoming).toEqual([]);
    expect(one.sync.stats().outgoing).toEqual([]);
  });

  it('tells a peer that (re)connects what is in flight and what the caches hold, and drops a stream that breaks the protocol', async () => {
    const peerList: string[] = [];
    const view = { backend: 'a', hashes: Float64Array.from([3, 2, 1]) };
    const one = await replica('one', () => peerList, [view, { backend: 'b', hashes: new Float64Array(0) }]);
    one.sync.routed(one.backends[0]!, prompt(1)); // before any peer is up
    // A replica that starts later: it asks the running one, which answers with its view of the caches.
    const two = await replica('two', () => [one.address]);
    two.sync.reconcile();
    await until(() => two.absorbed.length === 1, 'the cache view');
    expect(two.absorbed).toEqual([view]); // an empty view is not sent
    expect(one.absorbed).toEqual([]);
    // The running one connects back and tells it what is in flight.
    peerList.push(two.address);
    one.sync.reconcile();
    await until(() => two.backends[0]!.inflight === 1, 'the replayed request');

    // A client that skips hello is cut off, and nothing it sent counts.
    const rogue = new Client(two.address, credentials.createInsecure());
    const call = rogue.makeBidiStreamRequest(PEER_SYNC_PATH, (m: Uint8Array) => Buffer.from(m), (b: Buffer) => b);
    const status = new Promise<{ code: number; details: string }>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    call.write(encodePeerMessage({ kind: 'routed', id: 9, backend: 'b', ...prompt(1) }));
    expect(await status).toMatchObject({ code: 3, details: expect.stringMatching(/hello/) });
    rogue.close();
    expect(two.backends[1]!.inflight).toBe(0);

    // One that says hello, routes, then sends garbage is cut off too, and its request stops counting.
    const garbled = new Client(two.address, credentials.createInsecure());
    const call2 = garbled.makeBidiStreamRequest(PEER_SYNC_PATH, (m: Uint8Array) => Buffer.from(m), (b: Buffer) => b);
    const status2 = new Promise<{ code: number; details: string }>((resolve) => call2.on('status', resolve));
    call2.on('error', () => {});
    call2.on('data', () => {});
    call2.write(encodePeerMessage({ kind: 'hello', instance: 'garbled' }));
    call2.write(encodePeerMessage({ kind: 'routed', id: 1, backend: 'b', ...prompt(1) }));
    await until(() => two.backends[1]!.inflight === 1, 'the garbled peer\'s request');
    call2.write(encode(['r', 'not an id']));
    expect(await status2).toMatchObject({ code: 13, details: expect.stringMatching(/malformed/) });
    garbled.close();
    await until(() => two.backends[1]!.inflight === 0, 'its request dropped');
  });
});
