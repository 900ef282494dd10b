import { afterEach, describe, expect, it } from 'vitest';
import { Publisher } from 'zeromq';
import { silentLogger } from '../support/log.js';
import { encodeBatch, sequenceFrame } from '../simulator/kv-events-wire.js';
import type { Backend } from './backend.js';
import { combinedStatus, createKvEventSources, rankEndpoint } from './kv-event-sources.js';
import type { KvEvent } from './kv-events/wire.js';
import type { KvEventStatus } from './kv-events/subscriber.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const status = (s: Partial<KvEventStatus>): KvEventStatus => ({
  state: 'live', lastSequence: null, lastBatchAt: null, batches: 0, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null, ...s,
});

describe('KV event sources', () => {
  it('finds rank r of a data-parallel server on the port plus r, as vLLM publishes it', () => {
    expect(rankEndpoint('tcp://10.0.0.5:5557', 0)).toBe('tcp://10.0.0.5:5557');
    expect(rankEndpoint('tcp://10.0.0.5:5557', 3)).toBe('tcp://10.0.0.5:5560');
    expect(rankEndpoint('tcp://[fd00::5]:5557', 1)).toBe('tcp://[fd00::5]:5558');
  });

  it("reads a server's ranks as one: as known as its least known rank, counts summed", () => {
    const ranks = [status({ batches: 3, lastSequence: 9, lastBatchAt: 100 }), status({ state: 'partial', batches: 2, gaps: 1, lastSequence: 4, lastBatchAt: 200, lastError: 'gap' })];
    const combined = combinedStatus(ranks);
    expect({ ...combined }).toMatchObject({ state: 'partial', batches: 5, gaps: 1, lastSequence: 9, lastBatchAt: 200, lastError: 'gap' });
    ranks[1]!.state = 'live';
    // Live: read through, not copied.
    expect(combined.state).toBe('live');
    expect(combinedStatus([status({}), status({ state: 'connecting' })]).state).toBe('connecting');
  });

  it('follows every rank of a data-parallel server, each into its own sink', async () => {
    // Two publishers on consecutive ports: ranks 0 and 1 of one server.
    let publishers: Publisher[] = [];
    let port = 0;
    for (let attempt = 0; publishers.length < 2 && attempt < 20; attempt++) {
      port = 20000 + Math.floor(Math.random() * 30000);
      publishers = [new Publisher(), new Publisher()];
      try {
        await publishers[0]!.bind(`tcp://127.0.0.1:${port}`);
        await publishers[1]!.bind(`tcp://127.0.0.1:${port + 1}`);
      } catch {
        publishers.forEach((p) => p.close());
        publishers = [];
      }
    }
    expect(publishers).toHaveLength(2);
    cleanups.push(() => publishers.forEach((p) => p.close()));
    const applied: Array<{ publisher: number; rank: number; events: number }> = [];
    const resets: number[] = [];
    const sources = createKvEventSources({
      sinkFor: (_id, publisher) => ({ apply: (rank, events: readonly KvEvent[]) => applied.push({ publisher, rank, events: events.length }), reset: () => resets.push(publisher) }),
      logger: silentLogger,
    });
    const backend = { id: 'dp', kvEventsConfig: { endpoint: `tcp://127.0.0.1:${port}`, bind: false, topic: '', dataParallelSize: 2 }, cacheEvents: undefined } as unknown as Backend;
    sources.sync([backend]);
    cleanups.push(() => sources.stop());
    const store = { type: 'BlockStored' as const, blockHashes: [1], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 4 };
    // PUB drops what it sends before a subscription reaches it: send until both ranks are heard.
    for (let seq = 0; new Set(applied.map((a) => a.publisher)).size < 2; seq++) {
      if (seq > 200) throw new Error('the ranks were not both heard');
      for (const [rank, publisher] of publishers.entries()) await publisher.send(['', sequenceFrame(seq), encodeBatch(seq, [store], 'maps', rank)]);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(applied.every((a) => a.rank === a.publisher)).toBe(true);
    expect(backend.cacheEvents!.batches).toBe(applied.length);
    await sources.stop();
    expect(resets.sort()).toEqual([0, 1]);
  });
});

describe('KV event staleness', () => {
  it('marks a stream stale when work goes to its server and no batch comes back, and clears it on the next batch', async () => {
    let t = 1_000_000;
    const sources = createKvEventSources({ sinkFor: () => ({ apply() {}, reset() {} }), logger: silentLogger, now: () => t });
    cleanups.push(() => sources.stop());
    const backend = { id: 'b', routed: 0, kvEventsConfig: { endpoint: 'ipc:///tmp/no-such-publisher.sock', bind: false, topic: '', dataParallelSize: 1 }, cacheEvents: undefined, cacheEventsStale: false } as unknown as Backend & { routed: number };
    sources.sync([backend]);
    const events = status({ batches: 5 });
    backend.cacheEvents = events;
    sources.checkStaleness();
    // Silent and idle: nothing was expected of it.
    t += 60_000;
    sources.checkStaleness();
    expect(backend.cacheEventsStale).toBe(false);
    // Work sent: not stale until it has had time to be prefilled.
    backend.routed += 40;
    sources.checkStaleness();
    expect(backend.cacheEventsStale).toBe(false);
    t += 14_000;
    sources.checkStaleness();
    expect(backend.cacheEventsStale).toBe(false);
    t += 1_000;
    sources.checkStaleness();
    expect(backend.cacheEventsStale).toBe(true);
    events.batches++;
    sources.checkStaleness();
    expect(backend.cacheEventsStale).toBe(false);
  });
});
