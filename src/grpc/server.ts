/**
 * A gRPC server for bidirectional-streaming methods, straight on node:http2: the two services
 * the router serves (ext_proc and ADS) are both bidirectional streams of protobuf messages.
 *
 * Envoy opens one ext_proc stream per HTTP request, so the per-stream cost of the gRPC layer is
 * paid on every request. @grpc/grpc-js wraps each stream in interceptor chains, Node object
 * streams, metadata and deadline handling and channelz bookkeeping; measured under the overhead
 * benchmark that was most of the router's CPU per short request. This layer does only what the
 * two services need: length-prefixed framing, status trailers, message size limits, and a
 * graceful shutdown. @grpc/grpc-js stays the client in tests, which checks this server against
 * the reference implementation.
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { MessageStream } from './stream.js';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const;

/** What ts-proto generates for each message type. */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

export interface StreamingMethod<In, Out> {
  /** `/package.Service/Method` */
  path: string;
  requests: MessageCodec<In>;
  responses: MessageCodec<Out>;
  handler: (call: MessageStream<In, Out>) => void;
}

/** One bidirectional call over an HTTP/2 stream (see MessageStream for what handlers see). */
class BidiCall<In, Out> extends EventEmitter implements MessageStream<In, Out> {
  private headersSent = false;
  private finished = false;
  /** Sent when the stream ends; OK unless finish() says otherwise. */
  private trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly responses: MessageCodec<Out>,
  ) {
    super();
  }

  write(message: Out): boolean {
    if (this.finished || this.stream.destroyed) return false;
    this.sendHeaders();
    const payload = this.responses.encode(message).finish();
    const frame = Buffer.allocUnsafe(5 + payload.length);
    frame[0] = 0; // not compressed
    frame.writeUInt32BE(payload.length, 1);
    frame.set(payload, 5);
    return this.stream.write(frame);
  }

  /** Ends the call with OK. */
  end(): void {
    this.finish(GrpcStatus.OK, '');
  }

  /** Ends the call with an error status (UNKNOWN unless the error carries a `code`). */
  destroy(error?: Error & { code?: number }): void {
    this.finish(typeof error?.code === 'number' ? error.code : GrpcStatus.UNKNOWN, error?.message ?? 'cancelled');
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.trailers));
  }

  private finish(code: number, message: string): void {
    if (this.finished || this.stream.destroyed) return;
    this.finished = true;
    const status: http2.OutgoingHttpHeaders = { 'grpc-status': String(code) };
    if (code !== GrpcStatus.OK) status['grpc-message'] = statusMessage(message);
    if (!this.headersSent) {
      // Trailers-only response: status in the one HEADERS frame.
      this.headersSent = true;
      this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...status }, { endStream: true });
      return;
    }
    this.trailers = status;
    this.stream.end();
  }
}

/** grpc-message: UTF-8, with bytes outside printable ASCII, and '%', percent-encoded (gRPC spec). */
function statusMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Messages that span chunks are assembled in one buffer per server, reused for the next: a
 * 100k-token prompt is a 400 KB message, and a fresh buffer per request was external memory
 * churn that made V8 run a full collection every dozen such requests. Larger messages than
 * this get a buffer of their own, so the shared one stays bounded.
 */
const SHARED_ASSEMBLY_MAX_BYTES = 8 * 1024 * 1024;

class AssemblyBuffer {
  private buffer = Buffer.allocUnsafe(0);

  /** n bytes to fill; shared (and overwritten by the next message) up to the bound. */
  get(n: number): Buffer {
    if (n > SHARED_ASSEMBLY_MAX_BYTES) return Buffer.allocUnsafe(n);
    if (this.buffer.length < n) this.buffer = Buffer.allocUnsafe(Math.min(SHARED_ASSEMBLY_MAX_BYTES, Math.max(n, this.buffer.length * 2)));
    return this.buffer.subarray(0, n);
  }
}

/** Splits the request byte stream into gRPC messages (5-byte prefix: flag, big-endian length). */
class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly assembly: AssemblyBuffer,
  ) {}

  /** Whether the message now arriving has been announced to `begins` (once each). */
  private announced = false;

  /**
   * Feeds a chunk and hands each message it completes to `deliver`, in order. A message may
   * view the shared assembly buffer: it is valid until `deliver` returns. `begins` hears of
   * each message that has started but needs more chunks, with its length.
   */
  push(chunk: Buffer, deliver: (message: Buffer) => void, begins: (length: number) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 5) {
      const head = this.peek(5);
      if (head[0] !== 0) throw Object.assign(new Error('compressed messages are not supported'), { code: GrpcStatus.UNIMPLEMENTED });
      const length = head.readUInt32BE(1);
      if (length > this.maxBytes) {
        throw Object.assign(new Error(`message of ${length} bytes is over the limit of ${this.maxBytes}`), { code: GrpcStatus.RESOURCE_EXHAUSTED });
      }
      if (this.buffered < 5 + length) {
        if (!this.announced) begins(length);
        this.announced = true;
        break;
      }
      this.announced = false;
      this.skip(5);
      deliver(this.take(length));
    }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    return first.length >= n ? first : Buffer.concat(this.chunks, n);
  }

  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      if (first.length > n) {
        this.chunks[0] = first.subarray(n);
        return;
      }
      n -= first.length;
      this.chunks.shift();
    }
  }

  /** Removes and returns the next n bytes: a view of the chunk that holds them all, else assembled. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first!.length > n) {
      this.chunks[0] = first!.subarray(n);
      return first!.subarray(0, n);
    }
    if (first!.length === n) return this.chunks.shift()!;
    const out = this.assembly.get(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return out;
  }
}

export interface GrpcServer {
  port: number;
  /** Stops accepting streams, lets open ones finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number): Promise<void>;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  methods: ReadonlyArray<StreamingMethod<any, any>>;
  maxMessageBytes: number;
}

/** Flow-control window per stream and connection: a large prompt arrives without waiting on window updates. */
const WINDOW_BYTES = 16 * 1024 * 1024;

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const methods = new Map(options.methods.map((m) => [m.path, m]));
  const sessions = new Set<http2.ServerHttp2Session>();
  const assembly = new AssemblyBuffer();
  const server = http2.createServer({
    settings: { initialWindowSize: WINDOW_BYTES },
    // Every request's stream shares Envoy's one connection; Node's default 10 MB per session
    // would refuse streams (ENHANCE_YOUR_CALM) once replies carrying bodies (streamed mode)
    // queue up behind a slow reader. Message size is bounded per stream instead.
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
  });

  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', () => {}); // a peer vanishing mid-write; 'close' follows
    session.setLocalWindowSize(WINDOW_BYTES);
  });

  server.on('stream', (stream, headers) => {
    const method = methods.get(headers[':path'] as string);
    const contentType = String(headers['content-type'] ?? '');
    if (!method || !contentType.startsWith('application/grpc')) {
      const status = method ? GrpcStatus.INVALID_ARGUMENT : GrpcStatus.UNIMPLEMENTED;
      const message = method ? `content-type ${contentType} is not gRPC` : `unknown method ${headers[':path']}`;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(status), 'grpc-message': statusMessage(message) }, { endStream: true });
      return;
    }
    const call = new BidiCall(stream, method.responses);
    const reader = new MessageReader(options.maxMessageBytes, assembly);
    const deliver = (bytes: Buffer) => {
      if (stream.destroyed) return;
      let message: unknown;
      try {
        message = method.requests.decode(bytes);
      } catch (err) {
        throw Object.assign(new Error(`cannot decode the request: ${(err as Error).message}`), { code: GrpcStatus.INTERNAL });
      }
      call.emit('data', message);
    };
    stream.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, deliver, (length) => call.emit('incoming', length));
      } catch (err) {
        call.destroy(err as Error);
      }
    });
    stream.once('end', () => call.emit('end'));
    stream.on('error', (err) => {
      if (call.listenerCount('error') > 0) call.emit('error', err);
    });
    stream.once('close', () => call.emit('close'));
    method.handler(call);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
