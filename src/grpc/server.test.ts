// The router's gRPC layer against the reference client (@grpc/grpc-js).
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ExternalProcessorClient,
  ExternalProcessorService,
  ProcessingRequest,
  ProcessingResponse,
} from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import { GrpcStatus, startGrpcServer, type GrpcServer } from './server.js';
import type { MessageStream } from './stream.js';

type Call = MessageStream<ProcessingRequest, ProcessingResponse>;

let server: GrpcServer | undefined;
let client: ExternalProcessorClient | undefined;
afterEach(async () => {
  client?.close();
  await server?.close(0);
  server = undefined;
  client = undefined;
});

async function start(handler: (call: Call) => void, maxMessageBytes = 64 * 1024 * 1024) {
  server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    maxMessageBytes,
    methods: [{ path: ExternalProcessorService.process.path, requests: ProcessingRequest, responses: ProcessingResponse, handler }],
  });
  client = new ExternalProcessorClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
  });
  return client;
}

const body = (bytes: Buffer, endOfStream = true) => ProcessingRequest.fromPartial({ request: { $case: 'requestBody', value: { body: bytes, endOfStream } } });
const echo = (bytes: Buffer) => ProcessingResponse.fromPartial({ response: { $case: 'immediateResponse', value: { status: { code: 200 }, body: bytes } } });

/** Sends `requests`, half-closes, and collects the replies and the final status. */
function exchange(c: ExternalProcessorClient, requests: ProcessingRequest[]) {
  return new Promise<{ replies: ProcessingResponse[]; status: grpc.StatusObject | grpc.ServiceError }>((resolve) => {
    const replies: ProcessingResponse[] = [];
    const stream = c.process();
    stream.on('data', (r: ProcessingResponse) => replies.push(r));
    stream.on('error', (err: grpc.ServiceError) => resolve({ replies, status: err }));
    stream.on('status', (status: grpc.StatusObject) => {
      if (status.code === GrpcStatus.OK) resolve({ replies, status });
    });
    for (const r of requests) stream.write(r);
    stream.end();
  });
}

const bodyOf = (r: ProcessingResponse) => (r.response?.$case === 'immediateResponse' ? r.response.value.body : Buffer.alloc(0));

describe('gRPC server', () => {
  it('carries messages both ways, large ones too, and ends with OK', async () => {
    const c = await start((call) => {
      call.on('data', (r: ProcessingRequest) => call.write(echo(r.request?.$case === 'requestBody' ? r.request.value.body : Buffer.alloc(0))));
      call.on('end', () => call.end());
    });
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'x');
    const huge = Buffer.alloc(9 * 1024 * 1024, 'z'); // over the shared assembly buffer's bound
    const { replies, status } = await exchange(c, [body(Buffer.from('a')), body(big), body(Buffer.from('b')), body(huge)]);
    expect(status.code).toBe(GrpcStatus.OK);
    expect(replies.map((r) => bodyOf(r).length)).toEqual([1, big.length, 1, huge.length]);
    expect(bodyOf(replies[1]!).equals(big)).toBe(true);
    expect(bodyOf(replies[3]!).equals(huge)).toBe(true);
  });

  it('announces each message that needs more chunks once, with its length, before it is delivered', async () => {
    const events: string[] = [];
    const c = await start((call) => {
      call.on('incoming', (bytes) => events.push(`incoming ${bytes}`));
      call.on('data', (r: ProcessingRequest) => {
        events.push(`data ${r.request?.$case === 'requestBody' ? r.request.value.body.length : 0}`);
        call.write(echo(Buffer.alloc(0)));
      });
      call.on('end', () => call.end());
    });
    const big = Buffer.alloc(2 * 1024 * 1024, 'x');
    const bigLength = ProcessingRequest.encode(body(big)).finish().length;
    await exchange(c, [body(Buffer.from('a')), body(big), body(Buffer.from('b'))]);
    // The small ones fit in a chunk: no announcement for them.
    expect(events).toEqual(['data 1', `incoming ${bigLength}`, `data ${big.length}`, 'data 1']);
  });

  it('ends a call with the status and message the handler gives', async () => {
    const c = await start((call) => call.on('data', () => call.destroy(Object.assign(new Error('no: not % allowed, é'), { code: GrpcStatus.INVALID_ARGUMENT }))));
    const { status } = await exchange(c, [body(Buffer.from('a'))]);
    expect(status.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(status.details).toBe('no: not % allowed, é');
  });

  it('answers an unknown method with UNIMPLEMENTED', async () => {
    await start(() => {});
    const other = new grpc.Client(`127.0.0.1:${server!.port}`, grpc.credentials.createInsecure());
    const status = await new Promise<grpc.ServiceError>((resolve) => {
      other.makeUnaryRequest('/no.Such/Method', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err) => resolve(err!));
    });
    other.close();
    expect(status.code).toBe(GrpcStatus.UNIMPLEMENTED);
  });

  it('refuses a message over the size limit with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const c = await start((call) => {
      call.on('data', () => call.write(echo(Buffer.from('ok'))));
      call.on('end', () => call.end());
    }, 1024);
    const { status } = await exchange(c, [body(Buffer.alloc(4096))]);
    expect(status.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    const next = await exchange(c, [body(Buffer.from('small'))]);
    expect(next.status.code).toBe(GrpcStatus.OK);
    expect(next.replies).toHaveLength(1);
  });

  it('tells the handler when the client goes away', async () => {
    let closed!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const c = await start((call) => call.on('close', () => closed()));
    const stream = c.process();
    stream.on('error', () => {}); // the cancellation, seen by the client
    stream.write(body(Buffer.from('a'), false));
    await new Promise((r) => setTimeout(r, 50));
    stream.cancel();
    await gone;
  });

  it('lets open calls finish on close, within the grace period', async () => {
    let held: Call | undefined;
    const c = await start((call) => {
      held = call;
      call.on('data', () => call.write(echo(Buffer.from('late'))));
    });
    const pending = exchange(c, [body(Buffer.from('a'))]);
    while (!held) await new Promise((r) => setTimeout(r, 5));
    const closing = server!.close(5_000);
    setTimeout(() => held!.end(), 100);
    await closing;
    const { replies, status } = await pending;
    expect(status.code).toBe(GrpcStatus.OK);
    expect(replies).toHaveLength(1);
    server = undefined;
  });
});

describe('gRPC server under many large concurrent messages on one connection', () => {
  it('hands over each message intact while its listener runs, however streams interleave', async () => {
    const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    const c = await start((call) => {
      call.on('data', (r: ProcessingRequest) => call.write(echo(Buffer.from(digest(r.request?.$case === 'requestBody' ? r.request.value.body : Buffer.alloc(0))))));
      call.on('end', () => call.end());
    });
    const message = (stream: number, n: number) => Buffer.alloc(600 * 1024 + stream, 1 + stream * 2 + n);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => exchange(c, [body(message(i, 0)), body(message(i, 1))])));
    for (const [i, r] of results.entries()) {
      expect(r.replies.map((x) => bodyOf(x).toString())).toEqual([digest(message(i, 0)), digest(message(i, 1))]);
    }
  });

  it('carries 24 MiB in flight on one connection, as Envoy multiplexes every request on it', async () => {
    const held: Call[] = [];
    const c = await start((call) => {
      held.push(call);
      call.on('data', () => {
        // Answer only once every stream has sent its whole message: all of it is in flight.
        if (held.length === 24) for (const h of held) h.write(echo(Buffer.from('ok')));
      });
      call.on('end', () => call.end());
    });
    const big = Buffer.alloc(1024 * 1024, 'y');
    const results = await Promise.all(Array.from({ length: 24 }, () => exchange(c, [body(big)])));
    expect(results.map((r) => r.status.code)).toEqual(Array(24).fill(GrpcStatus.OK));
    expect(results.every((r) => bodyOf(r.replies[0]!).toString() === 'ok')).toBe(true);
  });
});
