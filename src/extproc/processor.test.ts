import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createRouterMetrics } from '../admin/metrics.js';
import { parseConfig } from '../config/load.js';
import {
  ExternalProcessorClient,
  ExternalProcessorService,
  ProcessingRequest,
  ProcessingResponse,
} from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import { startGrpcServer } from '../grpc/server.js';
import { silentLogger } from '../support/log.js';
import { createSchedulerMemory } from '../scheduling/memory.js';
import { schedulerFromConfig } from '../scheduling/registry.js';
import { FakeStream } from '../../test/helpers/fake-stream.js';
import { twoBackendFleet } from '../../test/helpers/two-backend-fleet.js';
import { createInflightRequests } from './inflight-requests.js';
import { createLargeBodyBudget } from './large-body-budget.js';
import { createProcessor } from './processor.js';

const { config, fleet } = twoBackendFleet();
const processor = createProcessor({
  fleet,
  scheduler: () => schedulerFromConfig(config, createSchedulerMemory(config)),
  config: () => config,
  metrics: createRouterMetrics(fleet),
  logger: silentLogger,
  version: 't',
});

const header = (key: string, value: string) => ({ key, value: '', rawValue: Buffer.from(value) });

/** Sends one request to the handler the way Envoy would in FULL_DUPLEX_STREAMED mode; the stream stays open. */
function openStreamedRequest(body: string, subset?: string[], responseBodyMode = 0) {
  const call = new FakeStream<ProcessingRequest, ProcessingResponse>(ProcessingResponse);
  const written = call.written;
  processor(call);
  call.emit(
    'data',
    ProcessingRequest.fromPartial({
      protocolConfig: { requestBodyMode: 4, responseBodyMode },
      metadataContext: subset ? { filterMetadata: { 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': subset } } } : undefined,
      request: {
        $case: 'requestHeaders',
        value: { headers: { headers: [header(':method', 'POST'), header(':path', '/v1/completions'), header('content-type', 'application/json')] } },
      },
    }),
  );
  expect(written).toHaveLength(0); // the headers reply waits for the body
  const bytes = Buffer.from(body);
  call.emit('data', ProcessingRequest.fromPartial({ request: { $case: 'requestBody', value: { body: bytes.subarray(0, 5), endOfStream: false } } }));
  call.emit('data', ProcessingRequest.fromPartial({ request: { $case: 'requestBody', value: { body: bytes.subarray(5), endOfStream: true } } }));
  return { call, written };
}

/** One request, start to end of stream. */
function streamedRequest(body: string, subset?: string[]) {
  const { call, written } = openStreamedRequest(body, subset);
  call.emit('end');
  return written;
}

const inflight = () => fleet.backends().reduce((n, b) => n + b.inflight, 0);

describe('ext_proc in FULL_DUPLEX_STREAMED mode', async () => {
  await new Promise((r) => setTimeout(r, 0)); // endpoints of IP-literal backends resolve at once

  it('answers headers with the pick, then gives the whole body back', () => {
    const body = '{"model":"m","prompt":"hello"}';
    const [headers, bodyReply] = streamedRequest(body);
    expect(headers!.response?.$case).toBe('requestHeaders');
    const common = headers!.response?.$case === 'requestHeaders' ? headers!.response.value.response : undefined;
    expect(common?.clearRouteCache).toBe(true);
    const pick = common?.headerMutation?.setHeaders.find((h) => h.header?.key === 'x-gateway-destination-endpoint');
    expect(pick?.header?.rawValue.toString()).toMatch(/^10\.0\.0\.[12]:8000,10\.0\.0\.[12]:8000$/);
    expect(headers!.dynamicMetadata?.['envoy.lb']).toEqual({ 'x-gateway-destination-endpoint': pick?.header?.rawValue.toString() });
    const mutation = bodyReply!.response?.$case === 'requestBody' ? bodyReply!.response.value.response?.bodyMutation?.mutation : undefined;
    expect(mutation?.$case).toBe('streamedResponse');
    if (mutation?.$case === 'streamedResponse') {
      expect(mutation.value.body.toString()).toBe(body);
      expect(mutation.value.endOfStream).toBe(true);
    }
  });

  it('passes a streamed response through and releases the backend when it ends, before the stream does', () => {
    const { call, written } = openStreamedRequest('{"model":"m","prompt":"x"}', undefined, 4);
    expect(inflight()).toBe(1);
    const chunk = (text: string, endOfStream: boolean) =>
      call.emit('data', ProcessingRequest.fromPartial({ request: { $case: 'responseBody', value: { body: Buffer.from(text), endOfStream } } }));
    chunk('data: 1\n\n', false);
    expect(inflight()).toBe(1);
    chunk('data: [DONE]\n\n', true);
    expect(inflight()).toBe(0);
    const echoed = written.slice(2).map((m) => (m.response?.$case === 'responseBody' ? m.response.value.response?.bodyMutation?.mutation : undefined));
    expect(echoed.map((m) => (m?.$case === 'streamedResponse' ? [m.value.body.toString(), m.value.endOfStream] : m))).toEqual([
      ['data: 1\n\n', false],
      ['data: [DONE]\n\n', true],
    ]);
    call.emit('end');
    expect(inflight()).toBe(0); // released once
  });

  it('picks only from the endpoints a gateway allows, and answers 503 when none is eligible', () => {
    const [headers] = streamedRequest('{"model":"m","prompt":"x"}', ['10.0.0.2:8000']);
    const common = headers!.response?.$case === 'requestHeaders' ? headers!.response.value.response : undefined;
    expect(common?.headerMutation?.setHeaders.find((h) => h.header?.key === 'x-gateway-destination-endpoint')?.header?.rawValue.toString()).toBe(
      '10.0.0.2:8000',
    );
    const [rejected] = streamedRequest('{"model":"m","prompt":"x"}', ['10.9.9.9:8000']);
    expect(rejected!.response?.$case).toBe('immediateResponse');
    if (rejected!.response?.$case === 'immediateResponse') expect(rejected!.response.value.status?.code).toBe(503);
  });
});

describe('ext_proc with request headers skipped (the repo bootstrap)', () => {
  // The bootstrap always sends the method and path; a test names only what it is about.
  const attributes = (values: Record<string, string>) => ({
    'envoy.filters.http.ext_proc': { 'request.method': 'POST', 'request.url_path': '/v1/completions', ...values },
  });

  /** One BUFFERED request whose only message is the body, carrying the attributes. */
  function bodyOnly(body: string, values: Record<string, string>) {
    const call = new FakeStream<ProcessingRequest, ProcessingResponse>(ProcessingResponse);
    const written = call.written;
    processor(call);
    call.emit('data', ProcessingRequest.fromPartial({ attributes: attributes(values), request: { $case: 'requestBody', value: { body: Buffer.from(body), endOfStream: true } } }));
    call.emit('end');
    return written;
  }

  it('reads the content type from the attributes and answers in the body reply', () => {
    const [reply] = bodyOnly('{"model":"m","prompt":"x"}', { 'request.method': 'POST', 'request.url_path': '/v1/completions', "request.headers['content-type']": 'application/json' });
    expect(reply!.response?.$case).toBe('requestBody');
    expect(reply!.dynamicMetadata?.['vllm.router']).toMatchObject({ model: 'm' });
    expect(reply!.dynamicMetadata?.['vllm.router']).not.toHaveProperty('content-type');
    const [xml] = bodyOnly('{"model":"m"}', { "request.headers['content-type']": 'application/xml' });
    expect(xml!.response?.$case === 'immediateResponse' && xml!.response.value.status?.code).toBe(415);
  });

  it('asks for a JSON content type through metadata when a JSON body came as a form', () => {
    const [reply] = bodyOnly('{"model":"m","prompt":"x"}', { "request.headers['content-type']": 'application/x-www-form-urlencoded' });
    expect(reply!.dynamicMetadata?.['vllm.router']).toMatchObject({ model: 'm', 'content-type': 'application/json' });
  });

  it('takes the session key from the configured header attribute', () => {
    const sticky = parseConfig({ ...config, backends: config.backends, scheduler: { scorers: [{ name: 'session-affinity' }], session: { header: 'x-session-id' } } });
    const memory = createSchedulerMemory(sticky);
    const seen: Array<string | undefined> = [];
    const scheduler = schedulerFromConfig(sticky, memory);
    const spy = { schedule: (request: Parameters<typeof scheduler.schedule>[0], candidates: Parameters<typeof scheduler.schedule>[1]) => (seen.push(request.sessionKey), scheduler.schedule(request, candidates)) };
    const p = createProcessor({ fleet, scheduler: () => spy, config: () => sticky, metrics: createRouterMetrics(fleet), logger: silentLogger, version: 't' });
    const call = new FakeStream<ProcessingRequest, ProcessingResponse>();
    p(call);
    call.emit('data', ProcessingRequest.fromPartial({ attributes: attributes({ "request.headers['x-session-id']": 'conv-7' }), request: { $case: 'requestBody', value: { body: Buffer.from('{"model":"m"}'), endOfStream: true } } }));
    expect(seen).toEqual(['conv-7']);
  });
});

describe('requests in flight on a backend that stops answering', () => {
  it('are ended with 503 backend_unresponsive through their open stream, and stop counting against it', () => {
    const inflightRequests = createInflightRequests();
    const p = createProcessor({ fleet, scheduler: () => schedulerFromConfig(config, createSchedulerMemory(config)), config: () => config, metrics: createRouterMetrics(fleet), logger: silentLogger, version: 't', inflight: inflightRequests });
    const call = new FakeStream<ProcessingRequest, ProcessingResponse>(ProcessingResponse);
    p(call);
    const before = inflight(); // earlier tests leave streams open on the shared fleet
    const attributes = { 'envoy.filters.http.ext_proc': { 'request.method': 'POST', 'request.url_path': '/v1/completions' } };
    call.send(ProcessingRequest.fromPartial({ attributes, request: { $case: 'requestBody', value: { body: Buffer.from('{"model":"m","prompt":"x"}'), endOfStream: true } } }));
    const backend = (call.written[0]!.dynamicMetadata?.['vllm.router'] as { backend: string }).backend;
    expect(inflight()).toBe(before + 1);
    expect(inflightRequests.endAll(backend === 'a' ? 'b' : 'a')).toBe(0);
    expect(inflightRequests.endAll(backend)).toBe(1);
    const ended = call.written[1]!.response;
    expect(ended?.$case === 'immediateResponse' && [ended.value.status?.code, JSON.parse(ended.value.body.toString()).error.code]).toEqual([503, 'backend_unresponsive']);
    expect(inflight()).toBe(before);
    call.finish();
    expect(inflight()).toBe(before);
    expect(inflightRequests.endAll(backend)).toBe(0);
  });
});

describe('ext_proc over the gRPC layer', () => {
  it('keeps every chunk of a streamed body intact, though the layer reuses its message buffer', async () => {
    const server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      maxMessageBytes: 64 * 1024 * 1024,
      methods: [{ path: ExternalProcessorService.process.path, requests: ProcessingRequest, responses: ProcessingResponse, handler: processor }],
    });
    const client = new ExternalProcessorClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      // Chunks larger than an HTTP/2 frame, so that each is assembled from several.
      const prompt = Array.from({ length: 4 }, (_, i) => String.fromCharCode(97 + i).repeat(100_000)).join('');
      const bytes = Buffer.from(JSON.stringify({ model: 'm', prompt }));
      const replies: ProcessingResponse[] = [];
      await new Promise<void>((resolve, reject) => {
        const stream = client.process();
        stream.on('data', (r: ProcessingResponse) => replies.push(r));
        stream.on('error', reject);
        stream.on('end', () => resolve());
        stream.write(
          ProcessingRequest.fromPartial({
            protocolConfig: { requestBodyMode: 4 },
            request: { $case: 'requestHeaders', value: { headers: { headers: [header(':method', 'POST'), header(':path', '/v1/completions'), header('content-type', 'application/json')] } } },
          }),
        );
        for (let at = 0; at < bytes.length; at += 100_000) {
          const end = Math.min(bytes.length, at + 100_000);
          stream.write(ProcessingRequest.fromPartial({ request: { $case: 'requestBody', value: { body: bytes.subarray(at, end), endOfStream: end === bytes.length } } }));
        }
        stream.end();
      });
      const mutation = replies[1]?.response?.$case === 'requestBody' ? replies[1].response.value.response?.bodyMutation?.mutation : undefined;
      expect(mutation?.$case === 'streamedResponse' && Buffer.compare(mutation.value.body, bytes)).toBe(0);
    } finally {
      client.close();
      await server.close(0);
    }
  });
});

describe('large bodies', () => {
  const MiB = 1024 * 1024;
  const budgeted = parseConfig({ ...config, upstream: { largeBodyBudgetBytes: 32 * MiB } });
  const largeBodies = createLargeBodyBudget();
  const handle = createProcessor({
    fleet,
    scheduler: () => schedulerFromConfig(budgeted, createSchedulerMemory(budgeted)),
    config: () => budgeted,
    metrics: createRouterMetrics(fleet),
    logger: silentLogger,
    version: 't',
    largeBodies,
  });
  /** A request whose headers Envoy sends first (the large-body filter), declaring `bytes`. */
  const declare = (bytes: number) => {
    const call = new FakeStream<ProcessingRequest, ProcessingResponse>(ProcessingResponse);
    handle(call);
    call.send(
      ProcessingRequest.fromPartial({
        request: {
          $case: 'requestHeaders',
          value: {
            headers: {
              headers: [header(':method', 'POST'), header(':path', '/v1/completions'), header('content-type', 'application/json'), header('content-length', String(bytes))],
            },
          },
        },
      }),
    );
    return call;
  };
  const refusal = (r: ProcessingResponse | undefined) =>
    r?.response?.$case === 'immediateResponse'
      ? { status: r.response.value.status?.code, code: JSON.parse(r.response.value.body.toString()).error.code, retryAfter: r.response.value.headers?.setHeaders.find((h) => h.header?.key === 'retry-after')?.header?.rawValue.toString() }
      : undefined;

  it('admits bodies over the fail-open bound within the budget, refuses the next with 503 at its headers, and frees the budget when a stream ends', () => {
    const first = declare(20 * MiB);
    expect(first.written[0]?.response?.$case).toBe('requestHeaders');
    expect(largeBodies.inUse()).toBe(20 * MiB);
    const second = declare(20 * MiB);
    expect(refusal(second.written[0])).toEqual({ status: 503, code: 'large_bodies_busy', retryAfter: '1' });
    expect(second.ended).toBe(false); // Envoy ends the stream after an immediate response
    // Small bodies are not counted.
    expect(declare(100_000).written[0]?.response?.$case).toBe('requestHeaders');
    expect(largeBodies.inUse()).toBe(20 * MiB);
    first.emit('close');
    expect(largeBodies.inUse()).toBe(0);
    const third = declare(20 * MiB);
    expect(third.written[0]?.response?.$case).toBe('requestHeaders');
    third.emit('close');
    expect(largeBodies.inUse()).toBe(0);
  });

  it('asks Envoy for more time when a body over the fail-open bound begins to arrive, and only then', () => {
    const call = new FakeStream<ProcessingRequest, ProcessingResponse>(ProcessingResponse);
    handle(call);
    call.emit('incoming', 512 * 1024);
    expect(call.written).toEqual([]);
    call.emit('incoming', 4 * MiB);
    expect(call.written.map((r) => [r.response, r.overrideMessageTimeout])).toEqual([[undefined, { seconds: 10, nanos: 0 }]]);
    call.emit('close');
  });
});
