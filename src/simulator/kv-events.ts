/**
 * Publishes the engine's KV cache events over ZMQ as vLLM's ZmqEventPublisher does: a PUB
 * socket sending `[topic, sequence, payload]` per batch, and a ROUTER answering replay
 * requests from a bounded buffer of recent batches: `[empty, empty, sequence, payload]` per
 * batch, then the end marker, as vLLM 0.32 answers a DEALER (checked against it).
 */
import type { Publisher, Router } from 'zeromq';
import { pubBinds, type KvEventsOptions } from './kv-events-config.js';
import { encodeBatch, END_OF_REPLAY_SEQUENCE, readStartSequence, sequenceFrame, type KvWireEvent } from './kv-events-wire.js';
import type { BlockRemovedEvent, BlockStoredEvent, KvEvents } from './kv-cache.js';

export interface KvEventPublisher {
  /** The PUB endpoint; when bound, as the socket reports it (a tcp port given as * resolved). */
  readonly endpoint: string;
  readonly replayEndpoint: string | null;
  /** Batches published so far, which is also the sequence number of the next one. */
  published(): number;
  /** Publishes what is pending, then closes both sockets. */
  close(): Promise<void>;
}

export interface PublisherDeps {
  /** Wall-clock seconds for batch timestamps (vLLM uses time.time()). */
  now?: () => number;
  onError?: (err: unknown) => void;
}

interface Buffered {
  seq: number;
  payload: Uint8Array;
}

export async function startKvEventPublisher(
  source: KvEvents,
  options: KvEventsOptions,
  deps: PublisherDeps = {},
): Promise<KvEventPublisher> {
  const now = deps.now ?? (() => Date.now() / 1000);
  const onError = deps.onError ?? ((err: unknown) => process.stderr.write(`vllm-sim: KV events: ${String(err)}\n`));
  // Loaded here so a simulator without KV events never loads the native addon.
  const zmq = await import('zeromq');
  const pub: Publisher = new zmq.Publisher({ sendHighWaterMark: options.hwm, linger: 0 });
  let router: Router | null = null;
  let step = `PUB ${options.endpoint}`;
  try {
    if (pubBinds(options.endpoint)) await pub.bind(options.endpoint);
    else pub.connect(options.endpoint);
    if (options.replayEndpoint !== null) {
      step = `replay ROUTER ${options.replayEndpoint}`;
      router = new zmq.Router({ linger: 0 });
      await router.bind(options.replayEndpoint);
    }
  } catch (err) {
    pub.close();
    router?.close();
    throw new Error(`KV events ${step}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  const topic = Buffer.from(options.topic, 'utf8');
  // Ring of the last bufferSteps batches, indexed by sequence number.
  const ring: (Buffered | undefined)[] = new Array<Buffered | undefined>(options.bufferSteps);
  let nextSeq = 0;
  let pending: KvWireEvent[] = [];
  let flushQueued = false;
  let sending: Promise<void> = Promise.resolve();
  let closed = false;

  /**
   * vLLM publishes one batch per engine step. A step's events are emitted within one timer
   * callback, so a microtask after the first event closes the batch at the end of that step.
   */
  function queue(event: KvWireEvent): void {
    if (closed) return;
    pending.push(event);
    if (!flushQueued) {
      flushQueued = true;
      queueMicrotask(flush);
    }
  }

  function flush(): void {
    flushQueued = false;
    if (pending.length === 0) return;
    const events = pending;
    pending = [];
    const seq = nextSeq++;
    const payload = encodeBatch(now(), events, options.encoding);
    ring[seq % options.bufferSteps] = { seq, payload };
    // zeromq allows one send in flight per socket; a PUB send never blocks, so this chain stays short.
    sending = sending.then(() => pub.send([topic, sequenceFrame(seq), payload])).catch(onError);
  }

  const listeners = {
    stored: (e: BlockStoredEvent) => queue({ type: 'BlockStored', ...e }),
    // vLLM reports each evicted block in its own BlockRemoved.
    removed: (e: BlockRemovedEvent) => {
      for (const hash of e.blockHashes) queue({ type: 'BlockRemoved', blockHashes: [hash] });
    },
    cleared: () => queue({ type: 'AllBlocksCleared' }),
  };
  source.on('stored', listeners.stored);
  source.on('removed', listeners.removed);
  source.on('cleared', listeners.cleared);

  async function serveReplay(socket: Router): Promise<void> {
    for await (const frames of socket) {
      // vLLM ignores anything but [identity, empty delimiter, start sequence].
      if (frames.length !== 3) continue;
      const [identity, , startFrame] = frames as [Buffer, Buffer, Buffer];
      const start = readStartSequence(startFrame);
      const end = nextSeq;
      const oldest = Math.max(0, end - options.bufferSteps);
      const first = start > BigInt(end) ? end : Math.max(oldest, Number(start));
      for (let seq = first; seq < end; seq++) {
        const entry = ring[seq % options.bufferSteps];
        if (entry?.seq !== seq) continue; // overwritten while this replay ran
        await socket.send([identity, '', '', sequenceFrame(seq), entry.payload]);
      }
      await socket.send([identity, '', '', END_OF_REPLAY_SEQUENCE, '']);
    }
  }
  const replayDone = router ? serveReplay(router).catch((err: unknown) => (closed ? undefined : onError(err))) : Promise.resolve();

  const boundEndpoint = pubBinds(options.endpoint) ? (pub.lastEndpoint ?? options.endpoint) : options.endpoint;
  let closing: Promise<void> | null = null;
  return {
    endpoint: boundEndpoint,
    replayEndpoint: router ? (router.lastEndpoint ?? options.replayEndpoint) : null,
    published: () => nextSeq,
    close() {
      closing ??= (async () => {
        flush();
        closed = true;
        source.off('stored', listeners.stored);
        source.off('removed', listeners.removed);
        source.off('cleared', listeners.cleared);
        await sending;
        pub.close();
        router?.close();
        await replayDone;
      })();
      return closing;
    },
  };
}
