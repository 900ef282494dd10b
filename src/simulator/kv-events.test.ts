/**
 * The simulator's KV events as a vLLM consumer sees them: a real ZMQ SUB and DEALER (zeromq)
 * on ipc:// sockets of a started simulator, requests over HTTP on 127.0.0.1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from '@msgpack/msgpack';
import { afterEach, describe, expect, it } from 'vitest';
import { Dealer, Subscriber } from 'zeromq';
import type { KvEventsOptions } from './kv-events-config.js';
import type { KvEventEncoding } from './kv-events-wire.js';
import { startSimulator, type SimulatorHandle } from './server.js';

const RECEIVE_TIMEOUT_MS = 3000;
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Batch {
  topic: string;
  seq: number;
  raw: Buffer;
  ts: unknown;
  events: any[];
  rank: unknown;
}

function parseBatch(topic: Buffer, seq: Buffer, payload: Buffer): Batch {
  const [ts, events, rank] = decode(payload, { useBigInt64: true }) as [unknown, any[], unknown];
  return { topic: topic.toString('utf8'), seq: Number(seq.readBigInt64BE()), raw: payload, ts, events, rank };
}

/** Type name of an event in either encoding. */
function typeOf(event: any): string {
  return Array.isArray(event) ? (event[0] as string) : (event.type as string);
}

async function startWithEvents(encoding: KvEventEncoding, extra: Partial<KvEventsOptions> = {}, engine = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kvev-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const kvEvents: KvEventsOptions = {
    endpoint: `ipc://${dir}/pub.sock`,
    replayEndpoint: `ipc://${dir}/replay.sock`,
    topic: 'kv@sim',
    bufferSteps: 10_000,
    hwm: 100_000,
    encoding,
    ...extra,
  };
  const sim = await startSimulator({ models: ['m'], host: '127.0.0.1', engine: { timeScale: 0, blockSize: 16, ...engine }, kvEvents });
  cleanups.push(() => sim.close());
  return { sim, kvEvents };
}

async function post(sim: SimulatorHandle, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${sim.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  return res.status;
}

function complete(sim: SimulatorHandle, prompt: number[], maxTokens = 2) {
  return post(sim, '/v1/completions', { model: 'm', prompt, max_tokens: maxTokens, ignore_eos: true });
}

/** Reads batches, each exactly one sequence number after the last, until `done` holds. */
class Reader {
  lastSeq: number | null = null;
  readonly seen: Batch[] = [];
  constructor(private readonly sub: Subscriber) {}

  async next(): Promise<Batch> {
    const [topic, seq, payload] = (await this.sub.receive()) as [Buffer, Buffer, Buffer];
    const batch = parseBatch(topic, seq, payload);
    if (this.lastSeq !== null) expect(batch.seq).toBe(this.lastSeq + 1);
    this.lastSeq = batch.seq;
    this.seen.push(batch);
    return batch;
  }

  async until(done: (events: any[]) => boolean): Promise<any[]> {
    const events: any[] = [];
    do events.push(...(await this.next()).events);
    while (!done(events));
    return events;
  }
}

/**
 * PUB drops what it sends before a subscription has reached it (ZMQ's slow joiner), so probe
 * with AllBlocksCleared, which a reset of an idle simulator publishes at once, until one arrives.
 */
async function subscribe(sim: SimulatorHandle, endpoint: string, topic: string): Promise<Reader> {
  const sub = new Subscriber({ receiveTimeout: 200, linger: 0 });
  cleanups.push(() => sub.close());
  sub.connect(endpoint);
  sub.subscribe(topic);
  const reader = new Reader(sub);
  for (let attempt = 0; reader.lastSeq === null; attempt++) {
    if (attempt === 25) throw new Error(`no KV event batch on ${endpoint} after ${attempt} probes`);
    expect(await post(sim, '/reset_prefix_cache')).toBe(200);
    await reader.next().catch((err: { code?: string }) => {
      if (err.code !== 'EAGAIN') throw err;
    });
  }
  sub.receiveTimeout = RECEIVE_TIMEOUT_MS;
  return reader;
}

/** A replay request as vLLM's consumers send it; returns [seq, payload] until the end marker. */
async function replay(endpoint: string, start: number): Promise<[number, Buffer][]> {
  const dealer = new Dealer({ receiveTimeout: RECEIVE_TIMEOUT_MS, linger: 0 });
  cleanups.push(() => dealer.close());
  dealer.connect(endpoint);
  const startFrame = Buffer.alloc(8);
  startFrame.writeBigUInt64BE(BigInt(start));
  await dealer.send(['', startFrame]);
  const replies: [number, Buffer][] = [];
  for (;;) {
    // vLLM 0.32 answers a DEALER with two empty frames before the sequence and the payload.
    const [delimiter, empty, seq, payload] = (await dealer.receive()) as [Buffer, Buffer, Buffer, Buffer];
    expect(delimiter.length).toBe(0);
    expect(empty.length).toBe(0);
    expect(seq.length).toBe(8);
    const n = Number(seq.readBigInt64BE());
    if (n === -1) {
      expect(payload.length).toBe(0);
      return replies;
    }
    replies.push([n, payload]);
  }
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

describe('KV events over ZMQ', () => {
  it('publishes BlockStored in vLLM 0.32 maps after a completion, chained to the cached prefix', async () => {
    const { sim, kvEvents } = await startWithEvents('maps');
    const reader = await subscribe(sim, kvEvents.endpoint, kvEvents.topic);
    const isStored = (events: any[]) => events.some((e) => typeOf(e) === 'BlockStored');

    const prompt = range(1000, 50);
    expect(await complete(sim, prompt)).toBe(200);
    const first = (await reader.until(isStored)).filter((e) => typeOf(e) === 'BlockStored');
    expect(first).toHaveLength(1);
    const stored = first[0];
    expect(Object.keys(stored)).toEqual([
      'type', 'block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium', 'lora_name',
      'extra_keys', 'group_idx', 'kv_cache_spec_kind',
    ]);
    expect(stored).toMatchObject({
      type: 'BlockStored',
      parent_block_hash: null,
      token_ids: prompt.slice(0, 48),
      block_size: 16,
      lora_id: null,
      medium: 'GPU',
      lora_name: null,
      extra_keys: [null, null, null],
      group_idx: 0,
      kv_cache_spec_kind: 'full_attention',
    });
    expect(stored.block_hashes).toHaveLength(3);
    // uint64 on the wire: decoded as bigints, not floats, and spread over the full range like vLLM's.
    for (const hash of stored.block_hashes) expect(typeof hash).toBe('bigint');
    expect(new Set(stored.block_hashes).size).toBe(3);

    const batch = reader.seen.at(-1) as Batch;
    expect(batch.topic).toBe('kv@sim');
    expect(typeof batch.ts).toBe('number');
    expect(Math.abs((batch.ts as number) - Date.now() / 1000)).toBeLessThan(60);
    expect(batch.rank).toBe(0);

    // The same prefix plus two more blocks: only the new blocks, parented on the last cached one.
    const longer = [...prompt.slice(0, 48), ...range(5000, 34)];
    expect(await complete(sim, longer)).toBe(200);
    const second = (await reader.until(isStored)).filter((e) => typeOf(e) === 'BlockStored');
    expect(second).toHaveLength(1);
    expect(second[0].parent_block_hash).toBe(stored.block_hashes[2]);
    expect(second[0].token_ids).toEqual(longer.slice(48, 80));
    expect(second[0].block_hashes).toHaveLength(2);
    expect(second[0].extra_keys).toEqual([null, null]);
  });

  it('publishes BlockRemoved for each evicted block and AllBlocksCleared on reset', async () => {
    // 8 blocks of 16 tokens: a second 64-token prompt must evict blocks of the first.
    const { sim, kvEvents } = await startWithEvents('maps', {}, { numGpuBlocks: 8, maxModelLen: 128 });
    const reader = await subscribe(sim, kvEvents.endpoint, kvEvents.topic);

    expect(await complete(sim, range(1000, 64))).toBe(200);
    const storedA = (await reader.until((ev) => ev.some((e) => typeOf(e) === 'BlockStored')))
      .filter((e) => typeOf(e) === 'BlockStored')
      .flatMap((e) => e.block_hashes as bigint[]);
    expect(storedA).toHaveLength(4);

    expect(await complete(sim, range(3000, 64))).toBe(200);
    // Its prefill stores its blocks; its first decode step needs one more, evicting one of the first prompt's.
    const events = await reader.until((ev) => ev.some((e) => typeOf(e) === 'BlockRemoved'));
    const removed = events.filter((e) => typeOf(e) === 'BlockRemoved');
    expect(removed.length).toBeGreaterThan(0);
    for (const e of removed) {
      expect(e).toEqual({ type: 'BlockRemoved', block_hashes: [expect.any(BigInt)], medium: 'GPU', group_idx: 0 });
      expect(storedA).toContain(e.block_hashes[0]);
    }
    // The least recently used block goes first: the first prompt's tail.
    expect(removed[0].block_hashes[0]).toBe(storedA[3]);

    expect(await post(sim, '/reset_prefix_cache')).toBe(200);
    expect((await reader.next()).events).toEqual([{ type: 'AllBlocksCleared' }]);
  });

  it('publishes the older positional arrays when asked', async () => {
    const { sim, kvEvents } = await startWithEvents('arrays', {}, { numGpuBlocks: 8, maxModelLen: 128 });
    const reader = await subscribe(sim, kvEvents.endpoint, kvEvents.topic);
    expect(reader.seen[0]?.events).toEqual([['AllBlocksCleared']]);

    const prompt = range(1000, 64);
    expect(await complete(sim, prompt)).toBe(200);
    const stored = (await reader.until((ev) => ev.some((e) => typeOf(e) === 'BlockStored'))).find((e) => typeOf(e) === 'BlockStored');
    expect(stored).toEqual(['BlockStored', [expect.any(BigInt), expect.any(BigInt), expect.any(BigInt), expect.any(BigInt)], null, prompt, 16, null, 'GPU']);

    expect(await complete(sim, range(3000, 64))).toBe(200);
    const removed = (await reader.until((ev) => ev.some((e) => typeOf(e) === 'BlockRemoved'))).filter((e) => typeOf(e) === 'BlockRemoved');
    expect(removed.length).toBeGreaterThan(0);
    expect(removed[0]).toEqual(['BlockRemoved', [stored[1][3]], 'GPU']);
  });

  it('replays buffered batches from a sequence number, then the -1 end marker', async () => {
    const { sim, kvEvents } = await startWithEvents('maps');
    const reader = await subscribe(sim, kvEvents.endpoint, kvEvents.topic);
    for (let i = 0; i < 3; i++) {
      expect(await complete(sim, range(1000 * (i + 1), 40))).toBe(200);
      await reader.until((ev) => ev.some((e) => typeOf(e) === 'BlockStored'));
    }
    const last = reader.lastSeq as number;
    expect(sim.kvEventPublisher?.published()).toBe(last + 1);

    // Everything published since the first batch this subscriber saw, byte for byte.
    const from = reader.seen[0]?.seq as number;
    const replies = await replay(kvEvents.replayEndpoint as string, from);
    expect(replies.map(([seq]) => seq)).toEqual(range(from, last - from + 1));
    expect(replies.map(([, payload]) => payload)).toEqual(reader.seen.map((b) => b.raw));
    expect(await replay(kvEvents.replayEndpoint as string, last + 5)).toEqual([]);
  });

  it('refuses to start when a socket cannot be bound, naming it', async () => {
    const kvEvents: KvEventsOptions = {
      endpoint: 'ipc:///nonexistent-dir/kv.sock',
      replayEndpoint: null,
      topic: '',
      bufferSteps: 10,
      hwm: 10,
      encoding: 'maps',
    };
    await expect(startSimulator({ models: ['m'], host: '127.0.0.1', kvEvents })).rejects.toThrow(
      /^KV events PUB ipc:\/\/\/nonexistent-dir\/kv\.sock: \S/,
    );
  });

  it('keeps only buffer_steps batches for replay', async () => {
    const { sim, kvEvents } = await startWithEvents('maps', { bufferSteps: 2 });
    const reader = await subscribe(sim, kvEvents.endpoint, kvEvents.topic);
    for (let i = 0; i < 3; i++) {
      expect(await post(sim, '/reset_prefix_cache')).toBe(200);
      await reader.next();
    }
    const last = reader.lastSeq as number;
    expect((await replay(kvEvents.replayEndpoint as string, 0)).map(([seq]) => seq)).toEqual([last - 1, last]);
  });
});
