import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRouterMetrics } from '../admin/metrics.js';
import { parseConfig } from '../config/load.js';
import { createFleet } from '../fleet/fleet.js';
import { ProcessingRequest, ProcessingResponse } from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import { silentLogger } from '../support/log.js';
import { createSchedulerMemory } from '../scheduling/memory.js';
import { schedulerFromConfig } from '../scheduling/registry.js';
import { parseRequestBody } from './parse-request.js';
import { FakeStream } from '../../test/helpers/fake-stream.js';
import { createProcessor } from './processor.js';

// Property tests: bounded in runs, so CI time stays small and fixed.
const RUNS = 300;

const jsonish = fc.oneof(
  fc.json({ depthSize: 'medium' }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify({ model: 'm', messages: v })),
  fc.record({ model: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), prompt: fc.jsonValue({ maxDepth: 3 }), stream: fc.jsonValue({ maxDepth: 1 }) }).map((v) => JSON.stringify(v)),
  fc.string(),
);

describe('request parser under arbitrary input', () => {
  it('never throws, and every rejection is a 4xx with an OpenAI error shape', () => {
    fc.assert(
      fc.property(
        fc.oneof(jsonish.map((s) => new TextEncoder().encode(s)), fc.uint8Array({ maxLength: 512 })),
        fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'image/png'),
        (body, contentType) => {
          const r = parseRequestBody(body, { contentType });
          if (r.ok) {
            expect(typeof r.request.model).toBe('string');
            expect(r.request.model.length).toBeGreaterThan(0);
          } else {
            expect(r.error.status).toBeGreaterThanOrEqual(400);
            expect(r.error.status).toBeLessThan(500);
            expect(r.error.message.length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('survives pathological nesting and size', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const r = parseRequestBody(new TextEncoder().encode(deep));
    expect(r.ok).toBe(false);
    const nested = `{"model":"m","messages":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    expect(parseRequestBody(new TextEncoder().encode(nested)).ok).toBe(true);
    const many = JSON.stringify({ model: 'm', messages: Array.from({ length: 100_000 }, () => ({ role: 'user', content: 'hi' })) });
    expect(parseRequestBody(new TextEncoder().encode(many)).ok).toBe(true);
  });
});

/** Every reply must survive the wire: the fake encodes and decodes each. */
const fakeCall = () => new FakeStream<ProcessingRequest, ProcessingResponse>(ProcessingResponse);

const header = (key: string, value: string) => ({ key, value: '', rawValue: Buffer.from(value) });

describe('ext_proc handler under arbitrary streams', () => {
  const config = parseConfig({ backends: [{ name: 'a', url: 'http://127.0.0.1:9', models: ['m'] }] });
  const fleet = createFleet({ config, logger: silentLogger });
  fleet.apply(config);
  const scheduler = schedulerFromConfig(config, createSchedulerMemory(config));
  const process = createProcessor({ fleet, scheduler: () => scheduler, config: () => config, metrics: createRouterMetrics(fleet), logger: silentLogger, version: 't' });

  const message = fc.oneof(
    fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD'),
      path: fc.constantFrom('/v1/models', '/v1/chat/completions', '/health', '/x', '/v1/models/m', '/tokenize'),
      contentType: fc.constantFrom('application/json', 'text/plain', 'application/xml'),
      eos: fc.boolean(),
    }).map((h) =>
      ProcessingRequest.fromPartial({
        request: {
          $case: 'requestHeaders',
          value: { headers: { headers: [header(':method', h.method), header(':path', h.path), header('content-type', h.contentType)] }, endOfStream: h.eos },
        },
      }),
    ),
    fc.record({ body: jsonish, eos: fc.boolean() }).map((b) =>
      ProcessingRequest.fromPartial({ request: { $case: 'requestBody', value: { body: Buffer.from(b.body), endOfStream: b.eos } } }),
    ),
    fc.constant(ProcessingRequest.fromPartial({ request: { $case: 'responseHeaders', value: { headers: { headers: [header(':status', '200')] } } } })),
    fc.constant(ProcessingRequest.fromPartial({ request: { $case: 'requestTrailers', value: {} } })),
  );

  it('answers every message with well-formed replies and never throws, in either body mode', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), fc.boolean(), (messages, streamed) => {
        const call = fakeCall();
        process(call);
        if (streamed) messages[0] = { ...messages[0]!, protocolConfig: { requestBodyMode: 4, responseBodyMode: 0, sendBodyWithoutWaitingForHeaderResponse: false } };
        for (const m of messages) call.emit('data', m);
        call.emit('end');
        // Buffered: exactly one reply per message. Streamed: replies wait for the body, and
        // the routing answer is two messages (headers, then the body).
        if (!streamed) expect(call.written.length).toBe(messages.length);
        else expect(call.written.length).toBeLessThanOrEqual(messages.length + 1);
        for (const reply of call.written) {
          expect(reply.response).toBeDefined();
          if (reply.response?.$case === 'immediateResponse') {
            expect(reply.response.value.status?.code).toBeGreaterThanOrEqual(200);
            if (reply.response.value.status!.code >= 400) {
              const body = JSON.parse(reply.response.value.body.toString()) as { error: { message: string } };
              expect(body.error.message.length).toBeGreaterThan(0);
            }
          }
        }
        expect(fleet.backends()[0]!.inflight).toBe(0);
      }),
      { numRuns: RUNS },
    );
  });
});
