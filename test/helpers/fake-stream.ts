import { EventEmitter } from 'node:events';
import type { MessageCodec } from '../../src/grpc/server.js';
import type { MessageStream } from '../../src/grpc/stream.js';

/**
 * A gRPC call without a network, for driving a stream handler (ext_proc, ADS) in a test: the
 * test plays the peer with send() and finish(), and reads what the handler wrote. Given a
 * codec, every reply is encoded and decoded on its way, so it must survive the wire.
 */
export class FakeStream<In, Out> extends EventEmitter implements MessageStream<In, Out> {
  readonly written: Out[] = [];
  /** Writes the handler attempted after the stream ended (a real stream drops them). */
  writesAfterEnd = 0;
  ended = false;
  destroyedWith: (Error & { code?: number }) | undefined;

  constructor(private readonly codec?: MessageCodec<Out>) {
    super();
  }

  write(message: Out): boolean {
    if (this.ended) {
      this.writesAfterEnd++;
      return false;
    }
    this.written.push(this.codec ? this.codec.decode(this.codec.encode(message).finish()) : message);
    return true;
  }

  end(): void {
    this.ended = true;
  }

  destroy(error?: Error & { code?: number }): void {
    this.ended = true;
    this.destroyedWith = error ?? new Error('cancelled');
    this.emit('close');
  }

  /** The peer sends a message. */
  send(message: In): this {
    this.emit('data', message);
    return this;
  }

  /** The peer half-closes its side. */
  finish(): this {
    this.emit('end');
    return this;
  }
}
