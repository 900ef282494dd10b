import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { sseFrames } from '../../test/helpers/sse.js';
import { parseVllmMetrics, READ_SERIES } from '../fleet/vllm-metrics.js';
import { startSimulator, type SimulatorHandle, type SimulatorOptions } from './server.js';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One request on a fresh connection (agent: false), so nothing lingers between tests. */
function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = httpRequest(
      `${base}${path}`,
      {
        method,
        agent: false,
        headers: payload === undefined ? headers : { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function postJson(base: string, path: string, body: unknown, headers?: Record<string, string>) {
  const reply = await call(base, 'POST', path, body, headers);
  return { status: reply.status, body: JSON.parse(reply.text) as Record<string, any> };
}

interface Stream {
  events: string[];
  /** Times (ms since the request was sent) at which each event arrived. */
  times: number[];
  done: Promise<void>;
  abort(): void;
}

/** Streams an SSE response, collecting each "data:" payload. */
function stream(base: string, path: string, body: unknown): Stream {
  const events: string[] = [];
  const times: number[] = [];
  const start = performance.now();
  let abort = () => {};
  const done = new Promise<void>((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        res.setEncoding('utf8');
        res.on(
          'data',
          sseFrames((frame) => {
            expect(frame.startsWith('data: ')).toBe(true);
            events.push(frame.slice(6));
            times.push(performance.now() - start);
          }),
        );
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      },
    );
    abort = () => {
      req.destroy();
      resolve();
    };
    req.on('error', (err) => (req.destroyed ? resolve() : reject(err)));
    req.end(JSON.stringify(body));
  });
  return { events, times, done, abort: () => abort() };
}

function chunks(s: Stream): Record<string, any>[] {
  expect(s.events.at(-1)).toBe('[DONE]');
  return s.events.slice(0, -1).map((e) => JSON.parse(e) as Record<string, any>);
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  if (!line) throw new Error(`metric ${name} ${labels} not found`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

const running: SimulatorHandle[] = [];
async function start(options: Partial<SimulatorOptions> = {}): Promise<SimulatorHandle> {
  const sim = await startSimulator({ models: ['llama-8b', 'llama-alias'], ...options, engine: { timeScale: 0.05, ...options.engine } });
  running.push(sim);
  return sim;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const messages = [
  { role: 'system', content: 'You are helpful.' },
  { role: 'user', content: [{ type: 'text', text: 'Explain prefix caching' }, { type: 'text', text: 'briefly.' }] },
];

describe('OpenAI API', () => {
  it('answers chat completions like vLLM, deterministically, with a prompt-derived length', async () => {
    const sim = await start();
    const { status, body } = await postJson(sim.url, '/v1/chat/completions', { model: 'llama-alias', messages });
    expect(status).toBe(200);
    expect(body).toMatchObject({ object: 'chat.completion', model: 'llama-alias', service_tier: null });
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(Number.isInteger(body.created)).toBe(true);
    const choice = body.choices[0];
    expect(choice).toMatchObject({ index: 0, logprobs: null, finish_reason: 'stop', stop_reason: null });
    expect(choice.message).toMatchObject({ role: 'assistant', tool_calls: [] });
    expect(typeof choice.message.content).toBe('string');
    const tok = await postJson(sim.url, '/tokenize', { model: 'llama-8b', messages });
    expect(body.usage.prompt_tokens).toBe(tok.body.count);
    expect(body.usage.completion_tokens).toBeGreaterThanOrEqual(16);
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(128);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    const again = await postJson(sim.url, '/v1/chat/completions', { messages });
    expect(again.body.model).toBe('llama-8b');
    expect(again.body.choices[0].message.content).toBe(choice.message.content);
    // The repeat is served from the prefix cache and says so.
    expect(again.body.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(sim.stats().requestsByModel).toEqual({ 'llama-8b': 1, 'llama-alias': 1 });
  });

  it('honours max_tokens / max_completion_tokens and the X-Request-Id header on completions', async () => {
    const sim = await start();
    const { status, body } = await postJson(sim.url, '/v1/completions', { model: 'llama-8b', prompt: 'Once upon a time', max_tokens: 7 }, {
      'x-request-id': 'abc123',
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: 'cmpl-abc123', object: 'text_completion', model: 'llama-8b' });
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0]).toMatchObject({ index: 0, finish_reason: 'length', logprobs: null, stop_reason: null });
    expect(body.usage).toMatchObject({ completion_tokens: 7, prompt_tokens: 4, total_tokens: 11 });
    const chat = await postJson(sim.url, '/v1/chat/completions', { messages, max_tokens: 99, max_completion_tokens: 3 });
    expect(chat.body.usage.completion_tokens).toBe(3);
    expect(chat.body.choices[0].finish_reason).toBe('length');
    const batch = await postJson(sim.url, '/v1/completions', { prompt: ['first prompt', 'second prompt'], max_tokens: 2 });
    expect(batch.body.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(batch.body.choices.map((c: any) => c.index)).toEqual([0, 1]);
    expect(batch.body.usage.completion_tokens).toBe(4);
    const ids = await postJson(sim.url, '/v1/completions', { prompt: [[11, 12, 13], [14, 15]], max_tokens: 1 });
    expect(ids.body.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 2 });
    const mixed = await postJson(sim.url, '/v1/completions', { prompt: [[11, 12], 'text'] });
    expect(mixed.status).toBe(400);
  });

  it('streams chat chunks: role first, content deltas, finish, usage, [DONE]', async () => {
    const sim = await start();
    const request = { messages, max_tokens: 12, stream: true, stream_options: { include_usage: true } };
    const s = stream(sim.url, '/v1/chat/completions', request);
    await s.done;
    const parsed = chunks(s);
    expect(parsed[0]).toMatchObject({ object: 'chat.completion.chunk', model: 'llama-8b' });
    expect(parsed[0]?.choices[0]).toEqual({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
    const tokens = parsed.slice(1, -1);
    expect(tokens).toHaveLength(12);
    expect(tokens.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(tokens.at(-1)?.choices[0]).toMatchObject({ finish_reason: 'length', stop_reason: null });
    expect(new Set(parsed.map((c) => c.id)).size).toBe(1);
    const usageChunk = parsed.at(-1);
    expect(usageChunk?.choices).toEqual([]);
    expect(usageChunk?.usage).toMatchObject({ completion_tokens: 12 });
    const text = tokens.map((c) => c.choices[0].delta.content).join('');
    const whole = await postJson(sim.url, '/v1/chat/completions', { messages, max_tokens: 12 });
    expect(text).toBe(whole.body.choices[0].message.content);

    const plain = stream(sim.url, '/v1/chat/completions', { messages, max_tokens: 3, stream: true });
    await plain.done;
    expect(chunks(plain).every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
  });

  it('streams completions with continuous usage stats and a stop token ending', async () => {
    const sim = await start();
    const s = stream(sim.url, '/v1/completions', {
      prompt: 'The meaning of life',
      stream: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    });
    await s.done;
    const parsed = chunks(s);
    const tokens = parsed.slice(0, -1);
    expect(tokens.length).toBeGreaterThanOrEqual(16);
    tokens.forEach((c, i) => {
      expect(c.object).toBe('text_completion');
      expect(c.usage.completion_tokens).toBe(i + 1);
    });
    // Without max_tokens the request ends on its stop token, which adds no text.
    expect(tokens.at(-1)?.choices[0]).toMatchObject({ text: '', finish_reason: 'stop' });
    expect(parsed.at(-1)?.usage.completion_tokens).toBe(tokens.length);
  });

  it('lists models, tokenizes and detokenizes, and answers health, ping and version', async () => {
    const sim = await start({ engine: { maxModelLen: 4096 } });
    const models = JSON.parse((await call(sim.url, 'GET', '/v1/models')).text);
    expect(models.object).toBe('list');
    expect(models.data.map((m: any) => m.id)).toEqual(['llama-8b', 'llama-alias']);
    expect(models.data[1]).toMatchObject({ object: 'model', owned_by: 'vllm', root: 'llama-8b', parent: null, max_model_len: 4096 });
    expect(models.data[0].permission[0]).toMatchObject({ object: 'model_permission', allow_sampling: true });
    const tok = await postJson(sim.url, '/tokenize', { prompt: 'Hello world, foo' });
    expect(tok.body).toMatchObject({ count: 6, max_model_len: 4096, token_strs: null });
    const detok = await postJson(sim.url, '/detokenize', { tokens: tok.body.tokens });
    expect(detok.body).toEqual({ prompt: 'Hello world, foo' });
    const health = await call(sim.url, 'GET', '/health');
    expect([health.status, health.text]).toEqual([200, '']);
    expect((await call(sim.url, 'GET', '/ping')).status).toBe(200);
    expect(JSON.parse((await call(sim.url, 'GET', '/version')).text)).toEqual({ version: '0.11.0-sim' });
  });
});

describe('errors', () => {
  it('matches vLLM error bodies', async () => {
    const sim = await start({ engine: { maxModelLen: 64 } });
    const unknown = await postJson(sim.url, '/v1/chat/completions', { model: 'gpt-4', messages });
    expect(unknown).toEqual({
      status: 404,
      body: { error: { message: 'The model `gpt-4` does not exist.', type: 'NotFoundError', param: 'model', code: 404 } },
    });
    const malformed = await call(sim.url, 'POST', '/v1/completions', '{"prompt": ');
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.text).error).toMatchObject({ type: 'Bad Request', code: 400, param: null });
    expect(JSON.parse(malformed.text).error.message).toContain('JSON decode error');
    const missing = await postJson(sim.url, '/v1/chat/completions', { model: 'llama-8b' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toContain("'loc': ('body', 'messages'), 'msg': 'Field required'");
    const long = await postJson(sim.url, '/v1/completions', { prompt: `${'word '.repeat(99)}word` });
    expect(long).toEqual({
      status: 400,
      body: {
        error: {
          message:
            "This model's maximum context length is 64 tokens. However, your request has 100 input tokens. " +
            'Please reduce the length of the input messages.',
          type: 'BadRequestError',
          param: null,
          code: 400,
        },
      },
    });
    const tooMany = await postJson(sim.url, '/v1/completions', { prompt: `${'word '.repeat(9)}word`, max_tokens: 60 });
    expect(tooMany.body.error.message).toBe(
      "'max_tokens' or 'max_completion_tokens' is too large: 60. This model's maximum context length is 64 tokens " +
        'and your request has 10 input tokens (60 > 64 - 10).',
    );
    expect((await postJson(sim.url, '/v1/completions', { prompt: 'x', max_tokens: 0 })).body.error.message).toBe(
      'max_tokens must be at least 1, got 0.',
    );
    expect((await postJson(sim.url, '/v1/completions', { prompt: 'x', n: 2 })).status).toBe(400);
    const options = await postJson(sim.url, '/v1/completions', { prompt: 'x', stream_options: { include_usage: true } });
    expect(options.body.error.message).toContain('Stream options can only be defined when `stream=True`.');
    const image = await postJson(sim.url, '/v1/chat/completions', {
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }],
    });
    expect(image.status).toBe(400);
    expect(image.body.error.type).toBe('BadRequestError');
    const notJson = await call(sim.url, 'POST', '/v1/completions', 'prompt=x', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(JSON.parse(notJson.text).error.message).toContain("Only 'application/json' is allowed");
    const path = await call(sim.url, 'GET', '/v1/nothing');
    expect([path.status, JSON.parse(path.text)]).toEqual([404, { detail: 'Not Found' }]);
    const method = await call(sim.url, 'GET', '/v1/chat/completions');
    expect([method.status, JSON.parse(method.text)]).toEqual([405, { detail: 'Method Not Allowed' }]);
    expect(sim.stats().requestsTotal).toBe(0);
  });
});

describe('load, metrics and lifecycle', () => {
  it('queues past max_num_seqs: waiting reaches 4 and later requests get their first token later', async () => {
    const sim = await start({ engine: { maxNumSeqs: 2, timeScale: 0.5 } });
    const streams = Array.from({ length: 6 }, (_, i) =>
      stream(sim.url, '/v1/completions', { prompt: `request number ${i}`, max_tokens: 40, stream: true }),
    );
    let fullBatchWithFourWaiting = false;
    const watch = waitFor(() => {
      const s = sim.stats();
      expect(s.running).toBeLessThanOrEqual(2);
      if (s.running === 2 && s.waiting === 4) fullBatchWithFourWaiting = true;
      return s.requestsTotal === 6;
    }, 'all requests to finish');
    await Promise.all([...streams.map((s) => s.done), watch]);
    expect(fullBatchWithFourWaiting).toBe(true);
    const ttfts = streams.map((s) => s.times[0] as number).sort((a, b) => a - b);
    // Three waves of two: each wave waits for about 40 decode steps of the previous one.
    expect(ttfts[2]! - ttfts[1]!).toBeGreaterThan(40 * 6 * 0.5 * 0.7);
    expect(ttfts[4]! - ttfts[3]!).toBeGreaterThan(40 * 6 * 0.5 * 0.7);
  });

  it('exposes vLLM metric names whose values move under load', async () => {
    const sim = await start();
    const before = (await call(sim.url, 'GET', '/metrics')).text;
    for (const name of [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:kv_cache_usage_perc',
      'vllm:prefix_cache_queries_total',
      'vllm:prefix_cache_hits_total',
      'vllm:prompt_tokens_total',
      'vllm:generation_tokens_total',
      'vllm:request_success_total',
      'vllm:num_preemptions_total',
      'vllm:time_to_first_token_seconds',
      'vllm:e2e_request_latency_seconds',
      'vllm:inter_token_latency_seconds',
      'vllm:cache_config_info',
    ]) {
      expect(before).toContain(`# HELP ${name} `);
      expect(before).toMatch(new RegExp(`# TYPE ${name} (gauge|counter|histogram)`));
    }
    expect(before).toContain('vllm:num_requests_running{engine="0",model_name="llama-8b"} 0.0');
    expect(before).toMatch(/vllm:cache_config_info\{[^}]*block_size="16"[^}]*enable_prefix_caching="True"[^}]*num_gpu_blocks="4096"[^}]*\} 1\.0/);

    const long = stream(sim.url, '/v1/chat/completions', { messages, max_tokens: 2000, stream: true });
    await waitFor(() => long.events.length > 2, 'tokens of the long request');
    const during = (await call(sim.url, 'GET', '/metrics')).text;
    expect(metricValue(during, 'vllm:num_requests_running')).toBe(1);
    expect(metricValue(during, 'vllm:kv_cache_usage_perc')).toBeGreaterThan(0);
    long.abort();
    await postJson(sim.url, '/v1/chat/completions', { model: 'llama-alias', messages, max_tokens: 5 });
    await waitFor(() => sim.stats().requestsTotal === 2, 'the aborted request to be counted');
    const after = (await call(sim.url, 'GET', '/metrics')).text;
    expect(metricValue(after, 'vllm:num_requests_running')).toBe(0);
    expect(metricValue(after, 'vllm:generation_tokens_total')).toBeGreaterThan(7);
    expect(metricValue(after, 'vllm:prefix_cache_hits_total')).toBeGreaterThan(0);
    expect(metricValue(after, 'vllm:request_success_total', 'engine="0",finished_reason="length",model_name="llama-alias"')).toBe(1);
    expect(metricValue(after, 'vllm:request_success_total', 'engine="0",finished_reason="abort",model_name="llama-8b"')).toBe(1);
    expect(metricValue(after, 'vllm:time_to_first_token_seconds_count')).toBe(2);
    expect(metricValue(after, 'vllm:inter_token_latency_seconds_count')).toBeGreaterThan(4);
    const stats = JSON.parse((await call(sim.url, 'GET', '/_sim/stats')).text);
    expect(stats).toMatchObject({ requestsByModel: { 'llama-8b': 1, 'llama-alias': 1 }, requestsTotal: 2, running: 0, waiting: 0 });
  });

  it('serves the series asked for by name on /metrics/, as prometheus_client does, and the router reads the same figures from it', async () => {
    const sim = await start();
    await postJson(sim.url, '/v1/chat/completions', { messages, max_tokens: 5 });
    const full = (await call(sim.url, 'GET', '/metrics')).text;
    expect((await call(sim.url, 'GET', '/metrics/')).text).toBe(full);
    const query = READ_SERIES.map((n) => `name[]=${encodeURIComponent(n)}`).join('&');
    const named = (await call(sim.url, 'GET', `/metrics/?${query}`)).text;
    expect(named.length).toBeLessThan(full.length / 2);
    expect(named).not.toContain('vllm:e2e_request_latency_seconds');
    expect(named).toMatch(/# TYPE vllm:time_to_first_token_seconds histogram\nvllm:time_to_first_token_seconds_(count|sum)\{/);
    expect(named).not.toContain('vllm:time_to_first_token_seconds_bucket');
    expect(parseVllmMetrics(named)).toEqual(parseVllmMetrics(full));
    const two = (await call(sim.url, 'GET', '/metrics/?name[]=vllm:num_requests_running&name[]=nothing')).text;
    expect(two).toBe(
      '# HELP vllm:num_requests_running Number of requests in model execution batches.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0",model_name="llama-8b"} 0.0\n',
    );
  });

  it('a client that disconnects frees its slot for the next request', async () => {
    const sim = await start({ engine: { maxNumSeqs: 1 } });
    const first = stream(sim.url, '/v1/completions', { prompt: 'long story', max_tokens: 20000, stream: true });
    await waitFor(() => first.events.length >= 3, 'first tokens');
    const second = stream(sim.url, '/v1/completions', { prompt: 'short', max_tokens: 5, stream: true });
    await waitFor(() => sim.stats().waiting === 1, 'the second request to queue');
    first.abort();
    await second.done;
    expect(chunks(second)).toHaveLength(5);
    expect(sim.stats()).toMatchObject({ running: 0, waiting: 0, requestsByFinishReason: { abort: 1, length: 1, stop: 0 } });
    expect(sim.stats().kvCacheUsage).toBe(0);
  });

  it('close() aborts in-flight work and leaves no handles behind', async () => {
    const handles = () => process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Timeout');
    // Let sockets of earlier tests finish closing before taking the baseline.
    await new Promise((r) => setTimeout(r, 20));
    const baseline = handles().sort();
    const sim = await startSimulator({ models: ['m'], engine: { maxNumSeqs: 1, timeScale: 0.05 } });
    const busy = stream(sim.url, '/v1/completions', { prompt: 'a', max_tokens: 20000, stream: true });
    const queued = call(sim.url, 'POST', '/v1/completions', { prompt: 'b', max_tokens: 5 }).catch((err: Error) => err);
    await waitFor(() => busy.events.length > 0 && sim.stats().waiting === 1, 'one running and one queued request');
    expect(handles()).toContain('TCPServerWrap');
    await sim.close();
    await busy.done;
    expect(await queued).toBeInstanceOf(Error);
    expect(sim.stats()).toMatchObject({ running: 0, waiting: 0, requestsByFinishReason: { abort: 2 } });
    await expect(call(sim.url, 'GET', '/health')).rejects.toThrow(/ECONNREFUSED/);
    await waitFor(() => JSON.stringify(handles().sort()) === JSON.stringify(baseline), 'handles to return to the baseline', 1000);
    await sim.close(); // idempotent
  });
});
