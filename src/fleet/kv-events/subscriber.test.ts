/**
 * The subscriber against real ZMQ sockets on ipc://: the simulator's publisher (both event
 * encodings) and a scripted publisher that skips and restarts sequences on demand.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Publisher, Router } from 'zeromq';
import { createPreciseIndex, tokenBlockKeys } from '../../scheduling/prefix/precise-index.js';
import { encodeBatch, END_OF_REPLAY_SEQUENCE, readStartSequence, sequenceFrame, type KvWireEvent } from '../../simulator/kv-events-wire.js';
import { startSimulator } from '../../simulator/server.js';
import { startKvEventSubscriber, type KvEventSink, type KvEventSubscriber } from './subscriber.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvsub-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

function indexSink(backend = 'a') {
  const index = createPreciseIndex();
  const sink: KvEventSink = {
    apply: (rank, events) => events.forEach((e) => index.apply(backend, rank, e)),
    reset: () => index.clear(backend),
  };
  return { index, sink };
}

async function subscribe(...args: Parameters<typeof startKvEventSubscriber>): Promise<KvEventSubscriber> {
  const subscriber = await startKvEventSubscriber(...args);
  cleanups.push(() => subscriber.close());
  return subscriber;
}

describe('KV event subscriber', () => {
  for (const encoding of ['maps', 'arrays'] as const) {
    it(`follows what a simulated vLLM caches, replaying what it published before (${encoding})`, async () => {
      const dir = tempDir();
      const kvEvents = { endpoint: `ipc://${dir}/pub.sock`, replayEndpoint: `ipc://${dir}/replay.sock`, topic: '', bufferSteps: 1000, hwm: 1000, encoding };
      const sim = await startSimulator({ models: ['m'], host: '127.0.0.1', engine: { timeScale: 0, blockSize: 16 }, kvEvents });
      cleanups.push(() => sim.close());
      const complete = (prompt: number[]) =>
        fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt, max_tokens: 1 }) }).then((r) => r.text());

      // Published before anyone listened: only the replay has it.
      const early = range(1000, 64);
      await complete(early);
      const { index, sink } = indexSink();
      const subscriber = await subscribe({ endpoint: kvEvents.endpoint, replayEndpoint: kvEvents.replayEndpoint }, sink);
      await waitFor(() => index.match('a', tokenBlockKeys(early, 16)) === 4, 'the replayed prompt in the index');
      expect(subscriber.status().state).toBe('live');

      // Live from now on.
      const later = [...early.slice(0, 32), ...range(5000, 48)];
      await complete(later);
      await waitFor(() => index.match('a', tokenBlockKeys(later, 16)) === 5, 'the live prompt in the index');
      await fetch(`${sim.url}/reset_prefix_cache`, { method: 'POST' });
      await waitFor(() => index.match('a', tokenBlockKeys(later, 16)) === 0, 'the cleared cache');
      expect(subscriber.status()).toMatchObject({ state: 'live', gaps: 0, restarts: 0, malformed: 0 });
    });
  }
});

describe('KV event subscriber: bind mode', () => {
  it("binds for a publisher that connects to it (vLLM given the router's address)", async () => {
    const dir = tempDir();
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    // A tcp endpoint that is not a wildcard: the simulator connects to it, as vLLM does.
    const kvEvents = { endpoint: `tcp://127.0.0.1:${port}`, replayEndpoint: `ipc://${dir}/replay.sock`, topic: '', bufferSteps: 1000, hwm: 1000, encoding: 'maps' as const };
    const sim = await startSimulator({ models: ['m'], host: '127.0.0.1', engine: { timeScale: 0, blockSize: 16 }, kvEvents });
    cleanups.push(() => sim.close());
    const { index, sink } = indexSink();
    await subscribe({ endpoint: kvEvents.endpoint, bind: true, replayEndpoint: kvEvents.replayEndpoint }, sink);
    // The publisher's connection comes when it comes: send prompts until one arrives live.
    for (let p = 0; ; p++) {
      if (p > 100) throw new Error('nothing arrived on the bound socket');
      const prompt = range(100 + 32 * p, 32);
      await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt, max_tokens: 1 }) });
      await new Promise((r) => setTimeout(r, 30));
      if (index.match('a', tokenBlockKeys(prompt, 16)) === 2) break;
    }
  });
});

/** A publisher whose sequence numbers the test chooses, with vLLM's replay socket over a buffer. */
async function scriptedPublisher(dir: string) {
  const pub = new Publisher({ linger: 0 });
  await pub.bind(`ipc://${dir}/pub.sock`);
  const router = new Router({ linger: 0 });
  await router.bind(`ipc://${dir}/replay.sock`);
  const buffer = new Map<number, Uint8Array>();
  void (async () => {
    for await (const [identity, , start] of router) {
      for (const [seq, payload] of [...buffer].sort((x, y) => x[0] - y[0])) {
        if (seq >= Number(readStartSequence(start!))) await router.send([identity!, '', '', sequenceFrame(seq), payload]);
      }
      await router.send([identity!, '', '', END_OF_REPLAY_SEQUENCE, '']);
    }
  })().catch(() => undefined);
  cleanups.push(() => {
    pub.close();
    router.close();
  });
  return {
    endpoint: `ipc://${dir}/pub.sock`,
    replayEndpoint: `ipc://${dir}/replay.sock`,
    buffer,
    /** Buffers a batch (replayable) and, unless `lost`, sends it live too. */
    async publish(seq: number, events: KvWireEvent[], lost = false) {
      const payload = encodeBatch(seq, events, 'maps');
      buffer.set(seq, payload);
      if (!lost) await pub.send(['', sequenceFrame(seq), payload]);
    },
  };
}

const store = (hash: number, parent: number | null, tokens: number[]): KvWireEvent => ({ type: 'BlockStored', blockHashes: [hash], parentBlockHash: parent, tokenIds: tokens, blockSize: 4 });
const remove = (hash: number): KvWireEvent => ({ type: 'BlockRemoved', blockHashes: [hash] });

describe('KV event subscriber: gaps and restarts', () => {
  async function started() {
    const publisher = await scriptedPublisher(tempDir());
    const { index, sink } = indexSink();
    await publisher.publish(0, [store(1, null, range(0, 4))], true);
    const subscriber = await subscribe({ endpoint: publisher.endpoint, replayEndpoint: publisher.replayEndpoint }, sink);
    await waitFor(() => subscriber.status().lastSequence === 0, 'the first batch, replayed');
    // PUB drops what it sends before the subscription reaches it: send until one arrives.
    for (let seq = 1; subscriber.status().lastSequence === 0 || seq === 1; seq++) {
      await publisher.publish(seq, []);
      await new Promise((r) => setTimeout(r, 20));
      if (seq > 100) throw new Error('no live batch arrived');
    }
    return { publisher, index, subscriber };
  }

  it('replays the batches a gap lost, removals included', async () => {
    const { publisher, index, subscriber } = await started();
    const keys = tokenBlockKeys(range(0, 8), 4);
    let seq = subscriber.status().lastSequence! + 1;
    await publisher.publish(seq++, [store(2, 1, range(4, 4))]);
    await waitFor(() => index.match('a', keys) === 2, 'two blocks');
    await publisher.publish(seq++, [remove(2)], true); // lost on the live stream
    await publisher.publish(seq, []);
    await waitFor(() => subscriber.status().lastSequence === seq, 'the batch after the gap');
    expect(index.match('a', keys)).toBe(1);
    expect(subscriber.status()).toMatchObject({ state: 'live', gaps: 1 });
  });

  it('forgets and rebuilds when a gap outran the replay buffer, and says the index is partial', async () => {
    const { publisher, index, subscriber } = await started();
    let seq = subscriber.status().lastSequence! + 1;
    await publisher.publish(seq++, [store(2, 1, range(4, 4))]);
    await waitFor(() => index.match('a', tokenBlockKeys(range(0, 8), 4)) === 2, 'two blocks');
    await publisher.publish(seq++, [remove(2)], true);
    publisher.buffer.clear(); // the buffer has moved on
    await publisher.publish(seq, [store(7, null, range(100, 4))]);
    await waitFor(() => subscriber.status().state === 'partial', 'a partial index');
    expect(index.match('a', tokenBlockKeys(range(0, 8), 4))).toBe(0); // nothing it cannot vouch for
    expect(index.match('a', tokenBlockKeys(range(100, 4), 4))).toBe(1);
  });

  it('starts over when the sequence goes back (the engine restarted)', async () => {
    const { publisher, index, subscriber } = await started();
    await waitFor(() => index.match('a', tokenBlockKeys(range(0, 4), 4)) === 1, 'the first block');
    publisher.buffer.clear();
    await publisher.publish(0, [store(9, null, range(200, 4))]);
    await waitFor(() => subscriber.status().restarts === 1, 'the restart');
    await waitFor(() => index.match('a', tokenBlockKeys(range(200, 4), 4)) === 1, "the new engine's block");
    expect(index.match('a', tokenBlockKeys(range(0, 4), 4))).toBe(0);
    expect(subscriber.status().state).toBe('live');
  });
});
