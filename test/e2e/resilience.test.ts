import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { AggregatedDiscoveryServiceService } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import { ExternalProcessorService } from '../../src/gen/envoy/service/ext_proc/v3/external_processor.js';
import { REPO } from '../../src/launcher/envoy.js';
import { waitForHttp } from '../../src/launcher/processes.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.js';
import { freePort } from '../../bench/stack.js';
import { openStream } from '../helpers/sse.js';
import { backendEntries, FAST_ENGINE, startStack, waitFor, type Stack } from '../helpers/stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function complete(url: string, model: string, extra: Record<string, unknown> = {}) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: `hello ${Math.random()}`, max_tokens: 4, ...extra }),
  });
  const body = await res.text();
  return { status: res.status, body, contentType: res.headers.get('content-type') };
}

/** Closed-loop load: `workers` clients sending requests back to back until `until()` says stop. */
async function steadyLoad(url: string, model: string, workers: number, until: () => boolean) {
  const outcomes: Array<{ status: number; body: string }> = [];
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!until()) outcomes.push(await complete(url, model, { max_tokens: 8 }));
    }),
  );
  return outcomes;
}

describe('backend failures', () => {
  it('loses no non-streaming request when a backend dies under steady load, and readmits it when it returns', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['llama-8b'] }] });
    const s = stack;
    const victim = s.sims[0]!;
    const port = victim.port;
    const stopAt = Date.now() + 3000;
    const load = steadyLoad(s.envoy.url, 'llama-8b', 6, () => Date.now() > stopAt);
    await new Promise((r) => setTimeout(r, 800));
    expect(victim.stats().requestsTotal).toBeGreaterThan(0);
    await victim.close(); // in-flight requests on it are cut; later connections are refused
    const outcomes = await load;
    const failed = outcomes.filter((o) => o.status !== 200);
    expect(outcomes.length).toBeGreaterThan(50);
    expect(failed.slice(0, 3)).toEqual([]);
    expect(failed).toHaveLength(0);
    await waitFor(() => s.router.fleet.backends()[0]!.health === 'unhealthy', 3000, 'the dead backend to leave rotation');

    const revived = await startSimulator({ models: ['llama-8b'], port, engine: FAST_ENGINE });
    s.sims[0] = revived;
    await waitFor(() => s.router.fleet.backends()[0]!.health === 'healthy', 5000, 'the backend to come back');
    for (let i = 0; i < 30 && revived.stats().requestsTotal === 0; i++) await complete(s.envoy.url, 'llama-8b');
    expect(revived.stats().requestsTotal).toBeGreaterThan(0);
  });

  it('ends the requests held by a backend that stops answering (SIGSTOP), and sends it nothing new within a second', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }] });
    const s = stack;
    // A real process, so that it can be stopped as a wedged GPU server is: connections are
    // accepted by the kernel, nothing is ever answered, in flight or new.
    const port = await freePort();
    const child = spawn(process.execPath, [join(REPO, 'dist/simulator/main.js'), '--port', String(port), '--model', 'llama-8b', '--time-scale', '0.05'], { stdio: 'ignore' });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/health`, 'the simulator process');
      const entries = backendEntries(s.sims, [{ models: ['llama-8b'] }]);
      await s.writeConfig(s.routerConfig({ backends: [...entries, { name: 'wedged', url: `http://127.0.0.1:${port}`, models: ['llama-8b'], capacity: 16 }] }));
      const wedged = () => s.router.fleet.backends().find((b) => b.id === 'wedged');
      await waitFor(() => wedged()?.health === 'healthy', 5000, 'the process to join');
      // The official client, which retries a 503 by itself (as SDKs do).
      const client = new OpenAI({ baseURL: `${s.envoy.url}/v1`, apiKey: 'unused', maxRetries: 2, timeout: 20_000 });
      const outcomes: Array<{ ok: boolean; ms: number; startedAt: number }> = [];
      const stopAt = Date.now() + 7000;
      const load = Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          for (let n = 0; Date.now() < stopAt; n++) {
            const startedAt = Date.now();
            const ok = await client.completions
              .create({ model: 'llama-8b', prompt: `client ${i} request ${n}`, max_tokens: 100 })
              .then(() => true, () => false);
            outcomes.push({ ok, ms: Date.now() - startedAt, startedAt });
          }
        }),
      );
      await waitFor(() => (wedged()?.routed ?? 0) > 10, 5000, 'traffic on the process');
      process.kill(child.pid!, 'SIGSTOP');
      const stoppedAt = Date.now();
      await new Promise((r) => setTimeout(r, 1200));
      const routedAfterASecond = wedged()!.routed;
      await load;
      expect(wedged()!.health).toBe('unhealthy');
      // Nothing new went there after the first second...
      expect(wedged()!.routed).toBe(routedAfterASecond);
      // ...what it held ended (the router answered 503, the client retried elsewhere)...
      const ended = await fetch(`http://127.0.0.1:${s.router.adminPort}/metrics`).then((r) => r.text());
      expect(Number(/vllm_router_rejections_total\{code="backend_unresponsive",status="503"\} (\d+)/.exec(ended)?.[1] ?? 0)).toBeGreaterThan(0);
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
      // (the stack's scraping: 2 failed probes of 500 ms; the defaults, 3 of 1 s, take about 3 s)
      expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(3000);
      // ...and the other server kept serving throughout.
      expect(outcomes.filter((o) => o.startedAt > stoppedAt + 1500).length).toBeGreaterThan(50);
    } finally {
      process.kill(child.pid!, 'SIGCONT');
      child.kill('SIGKILL');
    }
  });

  it('routes around a backend that answers 503, without client errors', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }] });
    const s = stack;
    s.sims[0]!.setFault({ kind: 'error', status: 503 });
    const outcomes = [];
    for (let i = 0; i < 20; i++) outcomes.push(await complete(s.envoy.url, 'llama-8b'));
    expect(outcomes.filter((o) => o.status !== 200)).toEqual([]);
    await waitFor(() => s.router.fleet.backends()[0]!.health === 'unhealthy', 3000, 'the failing backend to leave rotation');
  });

  it('answers a clear 503 in OpenAI format when every backend of a model is down', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['qwen-7b'] }] });
    const s = stack;
    await s.sims[0]!.close();
    await waitFor(() => s.router.fleet.backends()[0]!.health === 'unhealthy', 3000, 'the backend to leave rotation');
    const started = Date.now();
    const res = await complete(s.envoy.url, 'llama-8b');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(res.status).toBe(503);
    expect(res.contentType).toBe('application/json');
    expect(JSON.parse(res.body).error).toMatchObject({ code: 'no_healthy_backend', type: 'server_error' });
    expect((await complete(s.envoy.url, 'qwen-7b')).status).toBe(200);
    // The model is still served, only unavailable for now: listed, and found by id, as its 503 says.
    const listed = (await fetch(`${s.envoy.url}/v1/models`).then((r) => r.json())) as { data: Array<{ id: string }> };
    expect(listed.data.map((m) => m.id)).toEqual(['llama-8b', 'qwen-7b']);
    const one = await fetch(`${s.envoy.url}/v1/models/llama-8b`);
    expect(one.status).toBe(200);
    expect(((await one.json()) as { id: string }).id).toBe('llama-8b');

    // With the router down too, Envoy's own reply is in the same shape.
    await s.stopRouter();
    const fallback = await complete(s.envoy.url, 'llama-8b');
    expect(fallback.status).toBeGreaterThanOrEqual(500);
    expect(fallback.contentType).toBe('application/json');
    expect(JSON.parse(fallback.body).error.type).toBe('server_error');
  });
});

describe('backends leaving on purpose', () => {
  it('lets a removed backend finish its in-flight streams while new work goes elsewhere', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }] });
    const s = stack;
    const late = await startSimulator({ models: ['llama-8b'], engine: FAST_ENGINE });
    try {
      const res = await fetch(`${s.envoy.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-8b', prompt: 'long', max_tokens: 2000, ignore_eos: true, stream: true }),
      });
      const stream = await openStream(res);
      expect(s.sims[0]!.stats().running).toBe(1);
      // Replace the only backend with another one while its stream runs.
      await s.writeConfig(s.routerConfig({ backends: [{ name: 'late', url: late.url, models: ['llama-8b'], capacity: 16 }] }));
      await waitFor(() => s.router.fleet.backends().map((b) => b.id).join() === 'late', 5000, 'the reload');
      await waitFor(async () => (await complete(s.envoy.url, 'llama-8b')).status === 200 && late.stats().requestsTotal > 0, 10_000, 'new work on the new backend');
      const { completed, events } = await stream.rest();
      expect(completed).toBe(true);
      expect(events).toBe(2000);
    } finally {
      await late.close();
    }
  });
});

describe('control plane failures', () => {
  it('keeps serving each model from its own servers while the router is down, and routes again when it returns', async () => {
    stack = await startStack({
      backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }],
      config: { upstream: { failOpenMaxBodyBytes: 65_536 } },
    });
    const s = stack;
    // Envoy's own parse of the body (json_to_metadata) is only for when the router did not answer.
    const envoyParsed = async () => Number(/json_to_metadata\.rq\.success: (\d+)/.exec(await fetch(`${s.envoy.adminUrl}/stats?filter=json_to_metadata`).then((r) => r.text()))![1]);
    for (const model of ['llama-8b', 'qwen-7b']) expect((await complete(s.envoy.url, model)).status).toBe(200);
    expect(await envoyParsed()).toBe(0);
    await s.stopRouter();
    const before = s.sims.map((sim) => sim.stats().requestsTotal);
    for (let i = 0; i < 12; i++) {
      const model = i % 3 === 0 ? 'qwen-7b' : 'llama-8b';
      const res = await complete(s.envoy.url, model);
      expect(res.status, res.body).toBe(200);
      expect(JSON.parse(res.body).model).toBe(model);
    }
    const served = s.sims.map((sim, i) => sim.stats().requestsTotal - before[i]!);
    expect(served[0]! + served[1]!).toBe(8);
    expect(served[2]).toBe(4);
    expect(await envoyParsed()).toBe(12);
    const models = (await fetch(`${s.envoy.url}/v1/models`).then((r) => r.json())) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['llama-8b', 'qwen-7b']);
    // Bodies over upstream.failOpenMaxBodyBytes are not parsed by Envoy: without the router they get a clear 503.
    const large = { prompt: 'x'.repeat(70_000) };
    const refused = await complete(s.envoy.url, 'llama-8b', large);
    expect(refused.status).toBe(503);
    expect(refused.contentType).toBe('application/json');
    expect(JSON.parse(refused.body).error.code).toBe('router_unavailable');

    const router = await s.restartRouter();
    await waitFor(() => router.fleet.backends().every((b) => b.health === 'healthy'), 5000, 'the new router to see the fleet');
    await waitFor(
      async () => {
        await complete(s.envoy.url, 'llama-8b');
        return router.fleet.backends().some((b) => b.routed > 0);
      },
      10_000,
      'Envoy to route through the router again',
    );
    // With the router back, a large body is routed by it again, and Envoy parses no more bodies.
    const parsedBeforeReturn = await envoyParsed();
    const routed = await complete(s.envoy.url, 'llama-8b', large);
    expect(routed.status, routed.body).toBe(200);
    expect(JSON.parse(routed.body).model).toBe('llama-8b');
    for (const model of ['llama-8b', 'qwen-7b']) expect((await complete(s.envoy.url, model)).status).toBe(200);
    expect(await envoyParsed()).toBe(parsedBeforeReturn);
  });

  it('forwards no path outside the public API while the router is down either', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }] });
    const s = stack;
    await s.stopRouter();
    const res = await fetch(`${s.envoy.url}/_sim/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-8b', kind: 'error', status: 503 }) });
    expect(res.status).toBe(404);
    expect(JSON.parse(await res.text()).error.code).toBe('not_found');
    expect((await complete(s.envoy.url, 'llama-8b')).status).toBe(200); // fail-open routing still works, and the server took no fault
  });

  it('sends nothing to a backend removed from the config, even while the router is down', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }] });
    const s = stack;
    const [kept, removed, qwen] = s.sims as [SimulatorHandle, SimulatorHandle, SimulatorHandle];
    const entries = backendEntries(s.sims, [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }]);
    await s.writeConfig(s.routerConfig({ backends: [entries[0], entries[2]] }));
    await waitFor(() => s.router.fleet.backends().length === 2, 5000, 'the backend to leave the router');
    // Envoy has taken the update once the host is gone from its cluster, or (as Envoy does by
    // default for a host that still passes its health check) only marked for removal.
    const removedHost = async () =>
      (await fetch(`${s.envoy.adminUrl}/clusters`).then((r) => r.text())).split('\n').filter((l) => l.startsWith(`model_llama-8b::127.0.0.1:${removed.port}::`));
    await waitFor(
      async () => {
        const lines = await removedHost();
        return lines.length === 0 || lines.some((l) => l.includes('pending_dynamic_removal'));
      },
      5000,
      'Envoy to take the endpoint update',
    );
    await s.stopRouter();
    const before = [kept, removed, qwen].map((sim) => sim.stats().requestsTotal);
    for (let i = 0; i < 30; i++) {
      const res = await complete(s.envoy.url, 'llama-8b');
      expect(res.status, res.body).toBe(200);
    }
    const served = [kept, removed, qwen].map((sim, i) => sim.stats().requestsTotal - before[i]!);
    expect(served).toEqual([30, 0, 0]);
  });

  it('fails open after the message timeout when the router hangs', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }] });
    const s = stack;
    const port = s.router.grpcPort;
    await s.stopRouter();
    // A router that accepts every stream and never answers.
    const hung = new grpc.Server();
    const silent = () => {};
    hung.addService(ExternalProcessorService, { process: silent });
    hung.addService(AggregatedDiscoveryServiceService, { streamAggregatedResources: silent, deltaAggregatedResources: silent });
    await new Promise<void>((resolve, reject) =>
      hung.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    try {
      const started = Date.now();
      const res = await complete(s.envoy.url, 'llama-8b');
      const elapsed = Date.now() - started;
      expect(res.status, res.body).toBe(200);
      expect(elapsed).toBeGreaterThanOrEqual(900); // waited for the 1 s message timeout...
      expect(elapsed).toBeLessThan(5000); // ...and no longer
    } finally {
      hung.forceShutdown();
    }
  });

  it('drains: a stream in flight finishes while the router shuts down', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }] });
    const s = stack;
    const res = await fetch(`${s.envoy.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-8b', prompt: 'long story', max_tokens: 1500, ignore_eos: true, stream: true }),
    });
    expect(res.status).toBe(200);
    const stream = await openStream(res);
    const closing = s.stopRouter();
    const { completed, events } = await stream.rest();
    await closing;
    expect(completed).toBe(true);
    expect(events).toBe(1500);
  });
});

describe('config reloads', () => {
  it('refuses the empty and truncated files a rewrite leaves for a moment: 50 rewrites in 10 s, no failed request', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }] });
    const s = stack;
    const full = stringify(s.routerConfig());
    // Cut where `cp` or a slow editor might be when the watcher reads: before the backends.
    const truncated = full.slice(0, full.indexOf('backends:'));
    expect(truncated).not.toBe('');
    let rewriting = true;
    const load = steadyLoad(s.envoy.url, 'llama-8b', 4, () => !rewriting);
    const started = Date.now();
    for (let i = 0; i < 50 && Date.now() - started < 10_000; i++) {
      // In place, not by rename: the file is empty (or half written) until the second write.
      await writeFile(s.configPath, i % 2 === 0 ? '' : truncated);
      await new Promise((r) => setTimeout(r, 80)); // longer than the watcher's debounce
      await writeFile(s.configPath, full);
      await new Promise((r) => setTimeout(r, 80));
    }
    rewriting = false;
    const outcomes = await load;
    expect(outcomes.length).toBeGreaterThan(50);
    expect(outcomes.filter((o) => o.status !== 200).slice(0, 3)).toEqual([]);
    expect(s.reloadErrors.length).toBeGreaterThan(0);
    expect(s.reloadErrors[0]!.message).toMatch(/backends: (the file is empty|it names no backends)/);
    expect(s.router.fleet.backends()).toHaveLength(2);
  });
});

describe('limits', () => {
  it('reaps slow and silent client connections, and cuts no long generation', async () => {
    stack = await startStack({
      backends: [{ models: ['llama-8b'] }],
      defaultEngine: { timeScale: 0.5 }, // about 3 ms a token: 1000 tokens take longer than both timeouts below
      envoy: {
        edit: (bootstrap) => {
          // The bootstrap's own timeouts, scaled down so that the test takes seconds, not minutes.
          const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
          if (hcm.request_headers_timeout) hcm.request_headers_timeout = '1s';
          if (hcm.common_http_protocol_options?.idle_timeout) hcm.common_http_protocol_options.idle_timeout = '2s';
        },
      },
    });
    const { hostname, port } = new URL(stack.envoy.url);
    /** Ms until Envoy closes a connection that sends `bytes` and then nothing, or 'open' after 6 s. */
    const closedAfter = (bytes: string) =>
      new Promise<number | 'open'>((resolve) => {
        const started = Date.now();
        const socket = connect(Number(port), hostname, () => socket.write(bytes));
        const timer = setTimeout(() => (socket.destroy(), resolve('open')), 6000);
        socket.on('error', () => {});
        socket.resume(); // read, so that Envoy's close is seen (after its 408, for partial headers)
        socket.on('close', () => (clearTimeout(timer), resolve(Date.now() - started)));
      });
    const long = { model: 'llama-8b', prompt: 'tell a long story', max_tokens: 1000, ignore_eos: true };
    const [partialHeaders, silent, streamed, whole] = await Promise.all([
      closedAfter('POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-type: appl'),
      closedAfter(''),
      fetch(`${stack.envoy.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...long, stream: true }) })
        .then(openStream)
        .then((s) => s.rest()),
      complete(stack.envoy.url, 'llama-8b', { prompt: 'another long story', max_tokens: 1000, ignore_eos: true }),
    ]);
    expect(partialHeaders).toBeLessThan(4000);
    expect(silent).toBeLessThan(5000);
    expect([streamed.events, streamed.completed]).toEqual([1000, true]);
    expect(whole.status).toBe(200);
    expect(JSON.parse(whole.body).usage.completion_tokens).toBe(1000);
  });

  it('answers a body over the limit with an OpenAI-style 413', async () => {
    stack = await startStack({ backends: [{ models: ['llama-8b'] }] });
    const huge = JSON.stringify({ model: 'llama-8b', prompt: 'x'.repeat(33 * 1024 * 1024) });
    const res = await fetch(`${stack.envoy.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
    expect(stack.sims[0]!.stats().requestsTotal).toBe(0);
  });
});
