import { credentials, Client, type ClientDuplexStream } from '@grpc/grpc-js';
import type { Backend, FleetView } from '../fleet/backend.js';
import { GrpcStatus, type StreamingMethod } from '../grpc/server.js';
import type { RoutedPrompt } from '../scheduling/types.js';
import type { Logger } from '../support/log.js';
import { decodePeerMessage, encodePeerMessage, PEER_SYNC_PATH, peerMessageCodec, type PeerMessage } from './peer-messages.js';

/**
 * Router replicas behind one Envoy each see only the requests Envoy gave them, so each would
 * judge the servers' load and caches by its own share until the next scrape: two send to the
 * same idle server, a prompt one placed looks uncached to the other. With peers configured,
 * every replica streams what it routes (and when each request ends) to every other over gRPC,
 * and counts and learns what the others route as if it had routed it itself: the replicas
 * schedule as one router would.
 */
export interface PeerSync {
  /** This replica routed a request: tells the peers, and returns what to call when it ends. */
  routed(backend: Backend, routed: RoutedPrompt): () => void;
  /** The gRPC method peers' streams arrive on (served beside ext_proc). */
  readonly method: StreamingMethod<PeerMessage, PeerMessage>;
  /** Connects to peers the config added, drops those it removed. */
  reconcile(): void;
  stats(): PeerStats;
  /** Closes the streams to peers and ends theirs to this replica (they reconnect when it is back). */
  close(): void;
}

export interface PeerStats {
  instance: string;
  /** Peers this replica sends to: whether the stream is up, and how often it was reconnected. */
  outgoing: Array<{ address: string; connected: boolean; reconnects: number; self: boolean }>;
  /** Peers sending to this replica, and their requests it counts now. */
  incoming: Array<{ instance: string; inflight: number }>;
}

export interface PeerSyncOptions {
  /** This process, so that a replica that lists itself among its peers (one list for all) ignores its own stream. */
  instance: string;
  /** Other replicas' gRPC addresses, `host:port`, read again on reconcile(). */
  addresses: () => readonly string[];
  fleet: FleetView;
  /** Teaches the scheduler a prompt a peer routed (the prefix index, the queue's mean prefill). */
  remember: (backend: Backend, routed: RoutedPrompt) => void;
  /** What this replica thinks each backend's cache holds, least recently used first: told to a peer on connecting. */
  cacheViews: () => Array<{ backend: string; hashes: Float64Array }>;
  /** A peer's view of a backend's cache, taken where this replica has none yet (it has just started). */
  absorbCacheView: (backend: Backend, hashes: Float64Array) => void;
  logger: Logger;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

/** A peer's requests in flight, by its number for them: where each went, and its prompt's text bytes. */
type PeerRequests = Map<number, { backend: Backend; promptBytes: number }>;

export function createPeerSync(options: PeerSyncOptions): PeerSync {
  const { instance, fleet, logger } = options;
  /** Ours in flight, by the id peers know them by: told again to a peer that (re)connects. */
  const ours = new Map<number, PeerMessage & { kind: 'routed' }>();
  let nextId = 0;
  const links = new Map<string, OutgoingLink>();
  const incoming = new Set<{ instance: string; inflight: PeerRequests; call: { end(): void } }>();
  let closed = false;

  const broadcast = (m: PeerMessage) => {
    for (const link of links.values()) link.send(m);
  };

  function connect(address: string): OutgoingLink {
    let call: ClientDuplexStream<PeerMessage, PeerMessage> | undefined;
    let client: Client | undefined;
    let retryMs = RECONNECT_MIN_MS;
    let timer: NodeJS.Timeout | undefined;
    /** Closed for good (the peer left the config, or this replica stops): never reopened. */
    let stopped = false;
    const link: OutgoingLink = {
      connected: false,
      reconnects: 0,
      self: false,
      send(m) {
        if (call && link.connected && !link.self) call.write(m);
      },
      close() {
        stopped = true;
        clearTimeout(timer);
        link.connected = false;
        call?.cancel();
        client?.close();
        call = undefined;
      },
    };
    const down = (why: string) => {
      if (!call) return;
      call = undefined;
      link.connected = false;
      client?.close();
      if (stopped || closed || link.self) return;
      logger.warn('peer stream down; reconnecting', { peer: address, error: why, inMs: retryMs });
      timer = setTimeout(open, retryMs);
      timer.unref();
      retryMs = Math.min(RECONNECT_MAX_MS, retryMs * 2);
      link.reconnects++;
    };
    function open(): void {
      client = new Client(address, credentials.createInsecure());
      const stream = client.makeBidiStreamRequest(PEER_SYNC_PATH, (m: PeerMessage) => Buffer.from(encodePeerMessage(m)), (b: Buffer) => decodePeerMessage(b));
      call = stream;
      link.connected = true;
      // A peer answers hello with its own (it is up, or it is this process) and its view of
      // the caches, which a replica that has just started takes as its own.
      stream.on('data', (m: PeerMessage) => {
        if (m.kind === 'cached') {
          const backend = fleet.backends().find((b) => b.id === m.backend);
          if (backend) options.absorbCacheView(backend, m.hashes);
        }
        if (m.kind !== 'hello') return;
        retryMs = RECONNECT_MIN_MS;
        if (m.instance === instance) link.self = true;
      });
      stream.on('error', (err: Error) => down(err.message));
      stream.on('end', () => down('ended by the peer'));
      stream.write({ kind: 'hello', instance });
      for (const m of ours.values()) stream.write(m);
    }
    open();
    return link;
  }

  function reconcile(): void {
    const wanted = new Set(options.addresses());
    for (const [address, link] of links) {
      if (!wanted.has(address)) {
        link.close();
        links.delete(address);
      }
    }
    for (const address of wanted) if (!links.has(address)) links.set(address, connect(address));
  }

  /** A peer's stream: what it routes counts here until it says the request ended, or the stream goes. */
  const method: StreamingMethod<PeerMessage, PeerMessage> = {
    path: PEER_SYNC_PATH,
    requests: peerMessageCodec,
    responses: peerMessageCodec,
    handler(call) {
      const peer = { instance: '', inflight: new Map() as PeerRequests, call };
      call.on('data', (m) => {
        if (m.kind === 'hello') {
          call.write({ kind: 'hello', instance });
          if (m.instance === instance) return call.end(); // ourselves, through a shared list
          for (const view of options.cacheViews()) if (view.hashes.length > 0) call.write({ kind: 'cached', ...view });
          peer.instance = m.instance;
          incoming.add(peer);
          return;
        }
        if (peer.instance === '') return call.destroy(Object.assign(new Error('a peer stream starts with hello'), { code: GrpcStatus.INVALID_ARGUMENT }));
        // A backend this replica does not know (configs differ for a moment, during a reload) is skipped.
        if (m.kind === 'routed') {
          const backend = fleet.backends().find((b) => b.id === m.backend);
          if (!backend || peer.inflight.has(m.id)) return;
          fleet.dispatch(backend, m.predictedTtftS, m.uncachedTokens);
          options.remember(backend, m);
          peer.inflight.set(m.id, { backend, promptBytes: m.textBytes ?? 0 });
          return;
        }
        if (m.kind !== 'ended') return; // views of the caches go the other way
        const request = peer.inflight.get(m.id);
        if (!request) return;
        peer.inflight.delete(m.id);
        fleet.release(request.backend, request.promptBytes);
      });
      call.on('error', () => {});
      // However the stream ends, the peer's requests stop counting here (the next scrape shows any still running).
      call.on('close', () => {
        for (const { backend } of peer.inflight.values()) fleet.release(backend);
        peer.inflight.clear();
        incoming.delete(peer);
      });
    },
  };

  return {
    routed(backend, routed) {
      const id = nextId++;
      const m: PeerMessage & { kind: 'routed' } = { kind: 'routed', id, backend: backend.id, ...routed };
      ours.set(id, m);
      broadcast(m);
      return () => {
        if (!ours.delete(id)) return;
        broadcast({ kind: 'ended', id });
      };
    },
    method,
    reconcile,
    stats: () => ({
      instance,
      outgoing: [...links].map(([address, link]) => ({ address, connected: link.connected, reconnects: link.reconnects, self: link.self })),
      incoming: [...incoming].map((p) => ({ instance: p.instance, inflight: p.inflight.size })),
    }),
    close() {
      closed = true;
      for (const link of links.values()) link.close();
      links.clear();
      // Peers' streams to this replica end too: they would hold its server open until the grace runs out.
      for (const peer of incoming) peer.call.end();
    },
  };
}

interface OutgoingLink {
  connected: boolean;
  reconnects: number;
  /** It is this process (the address list names every replica): nothing is sent to it. */
  self: boolean;
  send(m: PeerMessage): void;
  close(): void;
}
