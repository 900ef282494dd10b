/**
 * What a handler of a bidirectional-streaming gRPC method sees of its call, and all it may
 * use: the server's BidiCall implements it, and tests drive handlers through one fake
 * (test/helpers/fake-stream.ts) that implements it too.
 *
 * Events: `data` (a decoded request), `end` (the peer half-closed), `error`, `close` (the
 * stream is gone, however it ended), `incoming` (a request of this many bytes has begun to
 * arrive and needs more chunks: a large one takes time on the wire). The bytes fields of a request may view a buffer the
 * server reuses once the `data` listeners return: copy what you keep.
 */
export interface MessageStream<In, Out> {
  on(event: 'data', listener: (message: In) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'incoming', listener: (bytes: number) => void): this;
  /** Sends one response; false once the stream is finished (or its buffer is full). */
  write(message: Out): boolean;
  /** Ends the call with OK. */
  end(): void;
  /** Ends the call with an error status (UNKNOWN unless the error carries a `code`). */
  destroy(error?: Error & { code?: number }): void;
}
