import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRouterMetrics } from '../admin/metrics.js';
import { ProcessingRequest, ProcessingResponse } from '../gen/envoy/service/ext_proc/v3/external_processor.js';
import { REPO } from '../launcher/envoy.js';
import { createSchedulerMemory } from '../scheduling/memory.js';
import { schedulerFromConfig } from '../scheduling/registry.js';
import { silentLogger } from '../support/log.js';
import { loadTokenizerSet } from '../tokenize/tokenizer-set.js';
import { FakeStream } from '../../test/helpers/fake-stream.js';
import { twoBackendFleet } from '../../test/helpers/two-backend-fleet.js';
import { createProcessor } from './processor.js';

const { config, fleet } = twoBackendFleet();

describe('prompts of a model with a configured tokenizer', () => {
  it('are tokenized while a server of the model reports its cache, and matched as text otherwise', async () => {
    const tokenizers = loadTokenizerSet({ m: join(REPO, 'test/fixtures/tiny-tokenizer') });
    const seen: string[] = [];
    const scheduler = schedulerFromConfig(config, createSchedulerMemory(config));
    const spy = { schedule: (request: Parameters<typeof scheduler.schedule>[0], candidates: Parameters<typeof scheduler.schedule>[1]) => (seen.push(request.prompt.kind), scheduler.schedule(request, candidates)) };
    const metrics = createRouterMetrics(fleet);
    const p = createProcessor({ fleet, scheduler: () => spy, config: () => config, metrics, logger: silentLogger, version: 't', tokenizers: () => tokenizers });
    const send = () => {
      const call = new FakeStream<ProcessingRequest, ProcessingResponse>();
      p(call);
      const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'Once upon a time' }));
      const attributes = { 'envoy.filters.http.ext_proc': { 'request.method': 'POST', 'request.url_path': '/v1/completions', "request.headers['content-type']": 'application/json' } };
      call.emit('data', ProcessingRequest.fromPartial({ attributes, request: { $case: 'requestBody', value: { body, endOfStream: true } } }));
    };
    send();
    const backend = fleet.backends()[0]!;
    backend.cacheEvents = { state: 'live', lastSequence: 0, lastBatchAt: 0, batches: 1, gaps: 0, replays: 0, restarts: 0, malformed: 0, lastError: null };
    try {
      send();
    } finally {
      backend.cacheEvents = undefined;
    }
    expect(seen).toEqual(['text', 'tokenizing']);
    const counts = await metrics.registry.getSingleMetricAsString('vllm_router_prompt_tokenizations_total');
    expect(counts).toContain('outcome="no-events"} 1');
    expect(counts).toContain('outcome="tokenized"} 1');
  });
});

