import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.js';
import { DEFAULT_PUBLIC_PATHS } from '../../src/contract/public-api.js';
import { REPO } from '../../src/launcher/envoy.js';
import { renderTable, type FleetStats } from '../../src/monitor.js';
import { backendEntries, FAST_ENGINE, pickerOnlyEnvoy, startStack, waitFor, type Stack } from '../helpers/stack.js';

// Run the whole suite twice: through our own Envoy bootstrap (buffered bodies, xDS) and through
// a picker-only Envoy (envoy/mesh/envoy-picker.yaml: streamed bodies, a static pool, no xDS).
describe.each([
  ['our Envoy bootstrap', false],
  ['a picker-only Envoy (streamed bodies)', true],
] as const)('through %s', (_variant, mesh) => {
  // Three simulated vLLM servers behind a real Envoy and the router: llama-8b on two, qwen-7b on one.
  let stack: Stack;
  let client: OpenAI;
  const LLAMA = [0, 1];
  const QWEN = 2;

  const servedBy = (sim: SimulatorHandle, model: string) => sim.stats().requestsByModel[model] ?? 0;
  const totals = () => stack.sims.map((s) => s.stats().requestsTotal);
  const diff = (before: number[], after: number[]) => after.map((n, i) => n - before[i]!);

  async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
    return fetch(`${stack.envoy.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  beforeAll(async () => {
    stack = await startStack({
      backends: [{ models: ['llama-8b'], aliases: ['llama-direct'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }],
      ...(mesh ? pickerOnlyEnvoy() : {}),
    });
    client = new OpenAI({ baseURL: `${stack.envoy.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('one endpoint in front of many vLLM servers', () => {
    it('serves chat completions through the official OpenAI client, streaming and not', async () => {
      const chat = await client.chat.completions.create({ model: 'llama-8b', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8 });
      expect(chat.object).toBe('chat.completion');
      expect(chat.model).toBe('llama-8b');
      expect(chat.choices[0]!.message.content).toBeTruthy();
      expect(chat.usage?.completion_tokens).toBe(8);

      const stream = await client.chat.completions.create({
        model: 'qwen-7b',
        messages: [{ role: 'user', content: 'Tell me a story' }],
        max_tokens: 12,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let chunks = 0;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      expect(chunks).toBeGreaterThan(12);
      expect(text.length).toBeGreaterThan(0);
      expect(usage?.completion_tokens).toBe(12);
    });

    it('serves text completions, streaming and not', async () => {
      const completion = await client.completions.create({ model: 'llama-8b', prompt: 'Once upon a time', max_tokens: 5 });
      expect(completion.object).toBe('text_completion');
      expect(completion.choices[0]!.text.length).toBeGreaterThan(0);

      const res = await post('/v1/completions', { model: 'llama-8b', prompt: 'Count:', max_tokens: 6, stream: true });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const body = await res.text();
      const events = body.split('\n\n').filter((e) => e.startsWith('data: '));
      expect(events.at(-1)).toBe('data: [DONE]');
      expect(events.length).toBe(6 + 1);
    });

    it('sends each model only to servers of that model', async () => {
      const before = stack.sims.map((s) => ({ llama: servedBy(s, 'llama-8b'), qwen: servedBy(s, 'qwen-7b') }));
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          client.completions.create({ model: i % 3 === 0 ? 'qwen-7b' : 'llama-8b', prompt: `request ${i}`, max_tokens: 2 }),
        ),
      );
      const after = stack.sims.map((s) => ({ llama: servedBy(s, 'llama-8b'), qwen: servedBy(s, 'qwen-7b') }));
      const llamaServed = LLAMA.map((i) => after[i]!.llama - before[i]!.llama);
      expect(llamaServed.reduce((a, b) => a + b)).toBe(16);
      for (const i of LLAMA) expect(after[i]!.qwen).toBe(0);
      expect(after[QWEN]!.qwen - before[QWEN]!.qwen).toBe(8);
      expect(after[QWEN]!.llama).toBe(0);
    });

    it('lists every model once at /v1/models', async () => {
      const models = await client.models.list();
      expect(models.data.map((m) => m.id).sort()).toEqual(['llama-8b', 'qwen-7b']);
      const one = await fetch(`${stack.envoy.url}/v1/models/qwen-7b`).then((r) => r.json());
      expect(one).toMatchObject({ id: 'qwen-7b', object: 'model' });
    });

    it('answers an unknown model with an OpenAI-style 404', async () => {
      const res = await post('/v1/chat/completions', { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(await res.json()).toEqual({
        error: { message: 'The model `gpt-9` does not exist.', type: 'NotFoundError', param: 'model', code: 'model_not_found' },
      });
      await expect(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
        NotFoundError,
      );
    });

    it('rejects bad input with a clear 4xx before any backend sees it', async () => {
      const before = totals();
      const cases: Array<[string, Record<string, string>, number, string]> = [
        ['{"model": "llama-8b", ', {}, 400, 'invalid_json'],
        ['{"messages": []}', {}, 400, 'missing_model'],
        ['{"model": 42}', {}, 400, 'invalid_model'],
        ['<xml/>', { 'content-type': 'application/xml' }, 415, 'unsupported_media_type'],
      ];
      for (const [body, headers, status, code] of cases) {
        const res = await post('/v1/chat/completions', body, headers);
        expect(res.status).toBe(status);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
      }
      expect(diff(before, totals())).toEqual([0, 0, 0]);
    });

    it('forwards only the public inference API: paths that control a server answer 404, whatever model the body names', async () => {
      const fault = { model: 'llama-8b', kind: 'error', status: 503 }; // what /_sim/fault would obey
      for (const path of ['/_sim/fault', '/reset_prefix_cache', '/sleep', '/collective_rpc', '/v1/load_lora_adapter', '/start_profile', '/v1/chat/completions/x']) {
        const res = await post(path, fault);
        expect([path, res.status, res.headers.get('content-type')]).toEqual([path, 404, 'application/json']);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
      }
      const empty = await fetch(`${stack.envoy.url}/sleep`, { method: 'POST' });
      expect([empty.status, ((await empty.json()) as { error: { code: string } }).error.code]).toEqual([404, 'not_found']);
      // No server took the fault.
      for (const sim of stack.sims) {
        const direct = await fetch(`${sim.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'qwen-7b', prompt: 'x', max_tokens: 1 }) });
        expect(direct.status).not.toBe(503);
      }
    });

    it('accepts curl -d bodies sent without a JSON content type', async () => {
      const res = await post('/v1/completions', '{"model":"qwen-7b","prompt":"hi","max_tokens":2}', {
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { object: string }).object).toBe("text_completion");
    });

    it('ignores routing headers sent by the client', async () => {
      const qwenEndpoint = new URL(stack.sims[QWEN]!.url).host;
      const before = stack.sims.map((s) => servedBy(s, 'llama-8b'));
      const qwenBefore = stack.sims[QWEN]!.stats().requestsTotal;
      for (let i = 0; i < 6; i++) {
        const res = await post(
          '/v1/completions',
          { model: 'llama-8b', prompt: 'x', max_tokens: 1 },
          { 'x-vllm-router-cluster': 'model_qwen-7b', 'x-gateway-destination-endpoint': qwenEndpoint },
        );
        expect(res.status).toBe(200);
      }
      expect(stack.sims[QWEN]!.stats().requestsTotal).toBe(qwenBefore);
      const after = stack.sims.map((s) => servedBy(s, 'llama-8b'));
      expect(LLAMA.map((i) => after[i]! - before[i]!).reduce((a, b) => a + b)).toBe(6);
    });

    it('answers /health, /version and requests without a body itself, in OpenAI JSON', async () => {
      const before = totals();
      const health = await fetch(`${stack.envoy.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok', backends: 3 });
      const version = (await fetch(`${stack.envoy.url}/version`).then((r) => r.json())) as { version: string };
      expect(version.version).toMatch(/^\d+\.\d+\.\d+/);
      const cases: Array<[string, string, number, string]> = [
        ['POST', '/v1/chat/completions', 400, 'invalid_request_body'],
        ['GET', '/v1/models/no-such-model', 404, 'model_not_found'],
        ['GET', '/no/such/path', 404, 'not_found'],
        ['GET', '/metrics', 404, 'not_found'],
        ['GET', '/metrics/?name[]=vllm:num_requests_running', 404, 'not_found'],
      ];
      for (const [method, path, status, code] of cases) {
        const res = await fetch(`${stack.envoy.url}${path}`, { method });
        expect([method, path, res.status, res.headers.get('content-type')]).toEqual([method, path, status, 'application/json']);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
      }
      expect(diff(before, totals())).toEqual([0, 0, 0]);
    });

    it('starts clean: Envoy prints no deprecation warning for its bootstrap or the resources the router serves', () => {
      // By now every route and cluster has been pushed and used.
      expect(stack.envoy.logs()).not.toMatch(/deprecat/i);
    });
  });

  describe('least-loaded routing', () => {
    it('sends new work away from a server that is busy with work it got elsewhere', async () => {
      const [busy, idle] = LLAMA.map((i) => stack.sims[i]!);
      // Load one llama server directly, under a name the router does not know, bypassing the
      // router: only its /metrics tell.
      const abort = new AbortController();
      const hog = Array.from({ length: 10 }, () =>
        fetch(`${busy!.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'llama-direct', prompt: 'long job', max_tokens: 4000, ignore_eos: true }),
          signal: abort.signal,
        }).then((r) => r.text(), () => ''),
      );
      try {
        await waitFor(() => busy!.stats().running + busy!.stats().waiting >= 10, 5000, 'the busy server to be loaded');
        // Seen in two scrapes running: load from elsewhere, not a gauge trailing our own work.
        await waitFor(() => (stack.router.fleet.backends().find((b) => b.url === busy!.url)?.lastingExcess ?? 0) >= 10, 5000, 'two scrapes');
        const before = [servedBy(busy!, 'llama-8b'), servedBy(idle!, 'llama-8b')];
        const idleView = () => stack.router.fleet.backends().find((b) => b.url === idle!.url)!;
        for (let i = 0; i < 10; i++) {
          // Each request starts once the previous one has left the idle server and a scrape
          // shows it idle: the only load in view is then the busy server's. (Back to back on a
          // starved machine, the previous request can still count there, even as queueing.)
          await waitFor(() => {
            const b = idleView();
            return b.inflight === 0 && b.metrics?.running === 0 && b.metrics.waiting === 0 && !b.queueing;
          }, 5000, 'the idle server to look idle');
          await client.completions.create({ model: 'llama-8b', prompt: `short ${i}`, max_tokens: 2 });
        }
        const routed = [servedBy(busy!, 'llama-8b') - before[0]!, servedBy(idle!, 'llama-8b') - before[1]!];
        expect(routed).toEqual([0, 10]);
      } finally {
        abort.abort();
        await Promise.all(hog);
      }
    });

    it('counts a request in flight until its response has ended, not when it was routed', async () => {
      const inflight = () => stack.router.fleet.backends().reduce((n, b) => n + b.inflight, 0);
      await waitFor(() => inflight() === 0, 5000, 'no requests in flight');
      const res = await post('/v1/completions', { model: 'llama-8b', prompt: 'a long answer', max_tokens: 3000, ignore_eos: true, stream: true });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      await reader.read(); // the response has started
      await new Promise((r) => setTimeout(r, 100));
      expect(inflight()).toBe(1);
      while (!(await reader.read()).done);
      await waitFor(() => inflight() === 0, 5000, 'the finished request to be released');
    });

    it('spreads a burst of concurrent requests instead of piling them on one server', async () => {
      // Start from a fleet the router has seen idle, so the burst itself is what is measured.
      await waitFor(() => stack.router.fleet.backends().every((b) => b.metrics?.running === 0 && b.metrics.waiting === 0), 10_000, 'an idle fleet');
      const before = totals();
      await Promise.all(
        Array.from({ length: 16 }, (_, i) => client.completions.create({ model: 'llama-8b', prompt: `burst ${i}`, max_tokens: 40, ignore_eos: true } as never)),
      );
      const routed = diff(before, totals());
      expect(routed[0]! + routed[1]!).toBe(16);
      expect(Math.min(routed[0]!, routed[1]!)).toBeGreaterThanOrEqual(6);
    });
  });

  describe('hot reload', () => {
    // The picker-only Envoy has a static pool of servers: nothing to add there.
    it.skipIf(mesh)('adds a backend from the config file without restarting Envoy', async () => {
      const extra = await startSimulator({ models: ['llama-8b'], engine: FAST_ENGINE });
      try {
        const envoyPid = stack.envoy.process.pid;
        const entries = [...backendEntries(stack.sims, [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }])];
        await stack.writeConfig(stack.routerConfig({ backends: [...entries, { name: 'late', url: extra.url, models: ['llama-8b'], capacity: 16 }] }));
        await waitFor(() => stack.router.fleet.backends().some((b) => b.id === 'late' && b.health === 'healthy'), 5000, 'the new backend');
        // Keep the other servers busier than the new one so the scheduler prefers it.
        const deadline = Date.now() + 10_000;
        while (extra.stats().requestsTotal === 0 && Date.now() < deadline) {
          await Promise.all(Array.from({ length: 6 }, () => client.completions.create({ model: 'llama-8b', prompt: 'x', max_tokens: 3 })));
        }
        expect(extra.stats().requestsTotal).toBeGreaterThan(0);
        expect(stack.envoy.process.pid).toBe(envoyPid);
        expect(stack.envoy.process.exitCode).toBeNull();

        // An invalid edit is rejected and the last good config keeps serving.
        await stack.writeConfig('backends:\n  - url: not a url\n');
        await waitFor(() => stack.reloadErrors.length > 0, 5000, 'the reload error');
        expect(stack.reloadErrors[0]!.message).toMatch(/backends\[0\]\.url/);
        const res = await client.completions.create({ model: 'llama-8b', prompt: 'still here', max_tokens: 1 });
        expect(res.choices).toHaveLength(1);
        expect(stack.router.fleet.backends()).toHaveLength(4);

        // Removing it again takes it out of rotation.
        await stack.writeConfig(stack.routerConfig({ backends: entries }));
        await waitFor(() => stack.router.fleet.backends().length === 3, 5000, 'the backend to be removed');
        const after = extra.stats().requestsTotal;
        await Promise.all(Array.from({ length: 6 }, () => client.completions.create({ model: 'llama-8b', prompt: 'y', max_tokens: 1 })));
        expect(extra.stats().requestsTotal).toBe(after);
      } finally {
        await extra.close();
      }
    });
  });

  describe('the public API allow-list', () => {
    it.skipIf(mesh)('forwards a path the config adds to api.paths, and stops when it is taken out again', async () => {
      const paths = [...DEFAULT_PUBLIC_PATHS, '/_sim/fault'];
      await stack.writeConfig(stack.routerConfig({ api: { paths } }));
      await waitFor(() => stack.router.config().api.paths.length === paths.length, 5000, 'the reload');
      await waitFor(async () => (await post('/_sim/fault', { model: 'llama-8b', kind: 'none' })).status === 200, 5000, 'Envoy to take the routes');
      await stack.writeConfig(stack.routerConfig());
      await waitFor(() => stack.router.config().api.paths.length === DEFAULT_PUBLIC_PATHS.length, 5000, 'the reload back');
      expect((await post('/_sim/fault', { model: 'llama-8b', kind: 'none' })).status).toBe(404);
    });
  });

  describe('live view of the fleet', () => {
    it('serves load statistics, a dashboard page and a terminal view that follow the traffic', async () => {
      const admin = `http://127.0.0.1:${stack.router.adminPort}`;
      await Promise.all(Array.from({ length: 20 }, (_, i) => client.completions.create({ model: 'llama-8b', prompt: `view ${i}`, max_tokens: 2 })));
      await new Promise((r) => setTimeout(r, 200)); // a scrape folds the traffic into the rates
      const stats = (await fetch(`${admin}/stats`).then((r) => r.json())) as FleetStats;
      expect(stats.backends.map((b) => b.id)).toEqual(['sim-0', 'sim-1', 'sim-2']);
      for (const b of stats.backends) {
        expect(b).toMatchObject({ health: 'healthy' });
        expect(b.lastScrapeAgeMs).not.toBeNull();
        expect(b.lastScrapeAgeMs!).toBeLessThan(1000);
      }
      expect(stats.backends[0]!.routedPerSecond + stats.backends[1]!.routedPerSecond).toBeGreaterThan(0);
      expect(stats.backends[0]!.prefixHitShare).not.toBeUndefined();

      const decisions = (stats as unknown as { recentDecisions: Array<{ model: string; backend: string; promptTokens: number; candidates: number }> }).recentDecisions;
      expect(decisions.length).toBeGreaterThan(0);
      expect(decisions[0]).toMatchObject({ model: 'llama-8b', candidates: 2 });
      expect(['sim-0', 'sim-1']).toContain(decisions[0]!.backend);

      const page = await fetch(`${admin}/dashboard`);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      const html = await page.text();
      expect(html).toContain("fetch('stats'");
      expect(html).toContain('routed/s');

      // Every series the Grafana dashboard queries exists, in the router's /metrics or Envoy's.
      const dashboard = JSON.parse(readFileSync(join(REPO, 'monitoring/grafana/dashboards/vllm-router.json'), 'utf8')) as {
        panels: Array<{ targets: Array<{ expr: string }> }>;
      };
      const exposed = (await fetch(`${admin}/metrics`).then((r) => r.text())) + (await fetch(`${stack.envoy.adminUrl}/stats/prometheus`).then((r) => r.text()));
      const names = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\b(?:vllm_router|envoy)_[a-z0-9_]+(?=[{[]|$)/g) ?? [])));
      expect(names.size).toBeGreaterThan(10);
      for (const name of names) expect(exposed, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));

      const table = renderTable(stats);
      for (const id of ['sim-0', 'sim-1', 'sim-2']) expect(table).toContain(id);
      expect(table.split('\n')[0]).toMatch(/3\/3 in rotation/);
    });
  });
});
