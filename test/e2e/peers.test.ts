import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startEnvoy, type EnvoyHandle } from '../../src/launcher/envoy.js';
import { startRouter, type Router } from '../../src/router.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.js';
import { silentLogger } from '../../src/support/log.js';
import { freePort } from '../../bench/stack.js';
import { waitFor } from '../helpers/stack.js';

// Two router replicas behind one real Envoy (ext_proc streams spread over both), each told the
// other's address: every request either routes counts in both, as one router would count it.
let sims: SimulatorHandle[] = [];
const routers: Router[] = [];
let envoy: EnvoyHandle | undefined;
let client: OpenAI;

beforeAll(async () => {
  // Real-time steps (6 ms): a long answer stays in flight for a second or more.
  sims = await Promise.all([0, 1].map(() => startSimulator({ models: ['llama-8b'] })));
  const ports = [await freePort(), await freePort()];
  for (const port of ports) {
    routers.push(
      await startRouter(
        parseConfig({
          grpc: { host: '127.0.0.1', port },
          admin: { host: '127.0.0.1', port: 0 },
          scraping: { intervalMs: 50, timeoutMs: 500 },
          backends: sims.map((s, i) => ({ name: `sim-${i}`, url: s.url, models: ['llama-8b'] })),
          // The same list for both: each ignores its own address.
          peers: { addresses: ports.map((p) => `127.0.0.1:${p}`) },
        }),
        silentLogger,
      ),
    );
  }
  await waitFor(() => routers.every((r) => r.fleet.backends().every((b) => b.health === 'healthy')), 10_000, 'backends healthy');
  // Active-active: Envoy spreads ext_proc streams over both (envoy/envoy.yaml's default is one active, one standby).
  envoy = await startEnvoy({ controlPlane: ports.map((port) => ({ host: '127.0.0.1', port })), activeActive: true, concurrency: 1 });
  client = new OpenAI({ baseURL: `${envoy.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
});

afterAll(async () => {
  await envoy?.stop();
  await Promise.all(routers.map((r) => r.close(500)));
  await Promise.all(sims.map((s) => s.close()));
});

const inflight = (r: Router) => r.fleet.backends().map((b) => b.inflight);
const routed = (r: Router) => r.fleet.backends().map((b) => b.routed);

describe('router replicas that tell each other what they route', () => {
  it('count a request in flight in both, whichever routed it, until it ends', async () => {
    await waitFor(() => routers.every((r) => r.fleet.backends().length === 2), 5_000, 'fleets');
    const long = client.chat.completions.create({ model: 'llama-8b', messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 300 });
    await waitFor(() => routers.every((r) => inflight(r).reduce((a, b) => a + b, 0) === 1), 5_000, 'the request counted by both replicas');
    expect(inflight(routers[0]!)).toEqual(inflight(routers[1]!));
    const answer = await long;
    expect(answer.usage?.completion_tokens).toBe(300);
    await waitFor(() => routers.every((r) => inflight(r).every((n) => n === 0)), 5_000, 'its end counted by both');
  });

  it('agree on what each backend was sent, though Envoy spread the requests over both', async () => {
    for (let i = 0; i < 10; i++) {
      // A prompt long enough to fill prefix blocks (64 bytes of text each).
      await client.chat.completions.create({ model: 'llama-8b', messages: [{ role: 'system', content: 'You answer briefly. '.repeat(20) }, { role: 'user', content: `Question ${i}` }], max_tokens: 3 });
    }
    await waitFor(() => routed(routers[0]!).join() === routed(routers[1]!).join(), 5_000, 'equal counts');
    expect(routed(routers[0]!).reduce((a, b) => a + b, 0)).toBe(11);
    // Both decided some of them: Envoy round-robins ext_proc streams over the replicas.
    const decided = await Promise.all(routers.map(async (r) => (await (await fetch(`http://127.0.0.1:${r.adminPort}/metrics`)).text()).match(/^vllm_router_decisions_total\{[^}]*\} (\d+)/gm) ?? []));
    for (const lines of decided) expect(lines.length).toBeGreaterThan(0);
  });

  it('show their links in /stats, stop counting a replica that goes away, and tell it the caches when it is back', async () => {
    const stats = (await (await fetch(`http://127.0.0.1:${routers[0]!.adminPort}/stats`)).json()) as { peers: { outgoing: Array<{ connected: boolean; self: boolean }>; incoming: unknown[] } };
    expect(stats.peers.outgoing.filter((o) => o.self)).toHaveLength(1);
    expect(stats.peers.outgoing.filter((o) => !o.self && o.connected)).toHaveLength(1);
    expect(stats.peers.incoming).toHaveLength(1);
    const config = routers[1]!.config();
    await routers[1]!.close(200);
    routers.pop();
    await waitFor(async () => ((await (await fetch(`http://127.0.0.1:${routers[0]!.adminPort}/stats`)).json()) as typeof stats).peers.incoming.length === 0, 5_000, 'the peer gone');

    // Back, with nothing learned: within 2 s it holds the other replica's view of every backend's cache.
    const guessed = async (r: Router) => {
      const s = (await (await fetch(`http://127.0.0.1:${r.adminPort}/stats`)).json()) as { backends: Array<{ cache: { guessedBlocks: number } }> };
      return s.backends.map((b) => b.cache.guessedBlocks);
    };
    const before = await guessed(routers[0]!);
    expect(before.some((n) => n > 0)).toBe(true);
    const started = Date.now();
    routers.push(await startRouter(config, silentLogger));
    await waitFor(async () => (await guessed(routers[1]!)).join() === before.join(), 2_000, 'the cache view taken over');
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
