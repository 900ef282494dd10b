/**
 * Follows one KV event publisher (one vLLM engine, or one data-parallel rank of it): a ZMQ SUB
 * socket for the live stream and a DEALER for vLLM's replay socket. On start it replays what
 * the publisher still buffers; on a sequence gap it replays the missing batches; when the
 * sequence goes back (the publisher restarted) it forgets that engine's blocks and replays
 * from the start. A gap the replay buffer no longer covers may have lost removals, so that
 * engine's blocks are forgotten and rebuilt from what is still buffered, and the status says
 * the index is partial.
 */
import type { Dealer, Subscriber } from 'zeromq';
import { decodeBatch, END_OF_REPLAY, readSequence, sequenceBytes, type KvEvent } from './wire.js';

export interface KvEventSource {
  /** Where the publisher's PUB socket is: connected to, or bound when `bind` (a publisher that connects). */
  endpoint: string;
  bind?: boolean;
  /** vLLM's replay ROUTER, if it has one. */
  replayEndpoint?: string;
  /** Only messages whose first frame starts with this (vLLM's `topic`); all when empty. */
  topic?: string;
}

/** Where decoded events go (the precise index, through the fleet). */
export interface KvEventSink {
  apply(rank: number, events: readonly KvEvent[]): void;
  /** Everything that engine reported before is void (restart, or a gap nothing can fill). */
  reset(): void;
}

/**
 * live: everything the engine reported since it started is applied. partial: some history is
 * missing (the router came after the replay buffer's oldest batch, or a gap outran it), so the
 * index may miss blocks stored back then, never claims one that is gone.
 */
export type KvEventState = 'connecting' | 'replaying' | 'live' | 'partial' | 'closed';

export interface KvEventStatus {
  state: KvEventState;
  /** Last sequence number applied. */
  lastSequence: number | null;
  /** Wall-clock ms of the last batch applied. */
  lastBatchAt: number | null;
  batches: number;
  gaps: number;
  replays: number;
  restarts: number;
  malformed: number;
  lastError: string | null;
}

export interface KvEventSubscriber {
  /** The live status (the same object throughout: read it, do not keep a copy). */
  status(): Readonly<KvEventStatus>;
  close(): Promise<void>;
}

export interface SubscriberDeps {
  now?: () => number;
  /** How long a replay may take before it is given up (ms). */
  replayTimeoutMs?: number;
}

export async function startKvEventSubscriber(source: KvEventSource, sink: KvEventSink, deps: SubscriberDeps = {}): Promise<KvEventSubscriber> {
  const now = deps.now ?? Date.now;
  const replayTimeoutMs = deps.replayTimeoutMs ?? 5000;
  // Loaded here, so a router without KV events never loads the native addon.
  const zmq = await import('zeromq');
  // IPv6 addresses (a pod's, in brackets) need the socket option.
  const sub: Subscriber = new zmq.Subscriber({ linger: 0, ipv6: source.endpoint.includes('[') });
  if (source.bind) await sub.bind(source.endpoint);
  else sub.connect(source.endpoint);
  sub.subscribe(source.topic ?? '');

  const status: KvEventStatus = { state: 'connecting', lastSequence: null, lastBatchAt: null, batches: 0, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null };
  let last: bigint | null = null;
  let closed = false;

  function apply(seq: bigint, payload: Uint8Array): void {
    try {
      const batch = decodeBatch(payload);
      sink.apply(batch.dataParallelRank, batch.events);
    } catch (err) {
      status.malformed++;
      status.lastError = err instanceof Error ? err.message : String(err);
    }
    last = seq;
    status.lastSequence = Number(seq);
    status.lastBatchAt = now();
    status.batches++;
  }

  /**
   * Applies what the publisher still buffers from `from` on. True when the buffer reached back
   * that far (nothing in between was lost), or, from 0, when it held nothing at all.
   */
  async function replay(from: bigint): Promise<boolean> {
    if (!source.replayEndpoint) return false;
    status.replays++;
    const dealer: Dealer = new zmq.Dealer({ linger: 0, receiveTimeout: replayTimeoutMs, ipv6: source.replayEndpoint.includes('[') });
    try {
      dealer.connect(source.replayEndpoint);
      await dealer.send(['', sequenceBytes(from)]);
      let complete: boolean | undefined;
      for (;;) {
        const frames = await dealer.receive();
        // vLLM 0.32 answers [empty, empty, sequence, payload] (older notes say one empty frame):
        // the sequence and payload are the last two either way. The end marker's payload is empty.
        if (frames.length < 2) throw new Error(`replay answered ${frames.length} frame(s)`);
        const seq = readSequence(frames[frames.length - 2]!);
        if (seq === END_OF_REPLAY) return complete ?? from === 0n;
        complete ??= seq <= from;
        if (last === null || seq > last) apply(seq, frames[frames.length - 1]!);
      }
    } catch (err) {
      status.lastError = `replay from ${source.replayEndpoint}: ${err instanceof Error ? err.message : String(err)}`;
      return false;
    } finally {
      dealer.close();
    }
  }

  /** Live messages at or below what a replay applied are repeats, until the stream passes it. */
  let streamCaughtUp = false;

  async function catchUp(from: bigint): Promise<void> {
    status.state = 'replaying';
    const complete = await replay(from);
    streamCaughtUp = false;
    if (complete) status.state = 'live';
    else {
      if (from > 0n) {
        // Removals may be among what was lost: the index could claim blocks that are gone.
        // Start over from what the publisher still buffers; blocks stored before that are
        // missed (an under-estimate) until they are stored again.
        sink.reset();
        last = null;
        await replay(0n);
      }
      status.state = 'partial';
    }
  }

  async function run(): Promise<void> {
    await catchUp(0n);
    for await (const frames of sub) {
      if (frames.length < 3) {
        status.malformed++;
        continue;
      }
      let seq: bigint;
      try {
        seq = readSequence(frames[1]!);
      } catch (err) {
        status.malformed++;
        status.lastError = err instanceof Error ? err.message : String(err);
        continue;
      }
      if (last !== null && seq <= last) {
        if (!streamCaughtUp || seq === last) {
          streamCaughtUp ||= seq === last;
          continue; // already applied by a replay
        }
        // The sequence went back: a new publisher (the engine restarted). Its cache is new too.
        status.restarts++;
        sink.reset();
        last = null;
        await catchUp(0n);
        if (last !== null && seq <= last) continue;
      } else if (last !== null && seq > last + 1n) {
        status.gaps++;
        await catchUp(last + 1n);
        if (last !== null && seq <= last) continue;
      }
      streamCaughtUp = true;
      apply(seq, frames[2]!);
    }
  }

  const running = run().catch((err: unknown) => {
    if (!closed) status.lastError = err instanceof Error ? err.message : String(err);
  });

  return {
    status: () => status,
    async close() {
      if (closed) return;
      closed = true;
      status.state = 'closed';
      sub.close();
      await running;
    },
  };
}
