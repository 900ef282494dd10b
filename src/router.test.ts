import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../test/helpers/stack.js';
import { parseConfig } from './config/load.js';
import { ExternalProcessorClient, ProcessingRequest, type ProcessingResponse } from './gen/envoy/service/ext_proc/v3/external_processor.js';
import { startRouter, type Router } from './router.js';
import { startSimulator, type SimulatorHandle } from './simulator/server.js';
import { silentLogger } from './support/log.js';

let router: Router | undefined;
let client: ExternalProcessorClient | undefined;
const sims: SimulatorHandle[] = [];
afterEach(async () => {
  client?.close();
  await router?.close(0);
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

/**
 * Sends one request's body the way the repo's bootstrap does (attributes instead of a headers
 * message) and returns the backend the router picked; the stream stays open, so the request
 * stays in flight there, until `done` is called.
 */
async function routeOnce(session: string, prompt: string): Promise<{ backend: string; done: () => void }> {
  const stream = client!.process();
  const reply = new Promise<ProcessingResponse>((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });
  stream.write(
    ProcessingRequest.fromPartial({
      attributes: {
        'envoy.filters.http.ext_proc': {
          'request.method': 'POST',
          'request.url_path': '/v1/completions',
          "request.headers['content-type']": 'application/json',
          "request.headers['x-session-id']": session,
        },
      },
      request: { $case: 'requestBody', value: { body: Buffer.from(JSON.stringify({ model: 'm', prompt })), endOfStream: true } },
    }),
  );
  const backend = ((await reply).dynamicMetadata?.['vllm.router'] as { backend?: unknown } | undefined)?.backend;
  if (typeof backend !== 'string') throw new Error('the router routed nowhere');
  return { backend, done: () => stream.end() };
}

describe('a config reload', () => {
  it('keeps a session on its backend when it adds an unrelated backend', async () => {
    for (const models of [['m'], ['m'], ['other']]) sims.push(await startSimulator({ models }));
    const raw = {
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      scraping: { intervalMs: 50 },
      backends: [
        { name: 'a', url: sims[0]!.url, models: ['m'] },
        { name: 'b', url: sims[1]!.url, models: ['m'] },
      ],
      scheduler: {
        scorers: [{ name: 'first-token-cost' }, { name: 'session-affinity', weight: 1 }],
        session: { header: 'x-session-id' },
      },
    };
    router = await startRouter(parseConfig(raw), silentLogger);
    await waitFor(() => router!.fleet.backends().every((b) => b.health === 'healthy'), 5000, 'both backends healthy');
    client = new ExternalProcessorClient(`127.0.0.1:${router.grpcPort}`, grpc.credentials.createInsecure());

    // The session's first request stays in flight, so that its backend is the busier one:
    // load alone would send the session's next request to the other.
    const first = await routeOnce('conversation-1', 'first turn');

    router.applyConfig(parseConfig({ ...raw, backends: [...raw.backends, { name: 'c', url: sims[2]!.url, models: ['other'] }] }));
    await waitFor(() => router!.fleet.backends().some((b) => b.id === 'c' && b.health === 'healthy'), 5000, 'the added backend');

    const second = await routeOnce('conversation-1', 'second turn, another prompt');
    expect(second.backend).toBe(first.backend);
    first.done();
    second.done();
  });
});

describe('tokenizers in the config', () => {
  it('refuses a reload naming a tokenizer it cannot read, keeping the config it serves', async () => {
    sims.push(await startSimulator({ models: ['m'] }));
    const raw = { grpc: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, backends: [{ name: 'a', url: sims[0]!.url, models: ['m'] }] };
    router = await startRouter(parseConfig(raw), silentLogger);
    const before = router.config();
    expect(() => router!.applyConfig(parseConfig({ ...raw, tokenizers: { m: '/nonexistent/model' } }))).toThrow('tokenizer in /nonexistent/model: tokenizer.json not found');
    expect(router.config()).toBe(before);
    await expect(startRouter(parseConfig({ ...raw, grpc: { host: '127.0.0.1', port: 0 }, tokenizers: { m: '/nonexistent/model' } }), silentLogger)).rejects.toThrow('tokenizer.json not found');
  });
});
