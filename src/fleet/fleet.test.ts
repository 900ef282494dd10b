import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { silentLogger } from '../support/log.js';
import { startSimulator, type SimulatorHandle } from '../simulator/server.js';
import { waitFor } from '../../test/helpers/stack.js';
import { isRoutable } from './backend.js';
import { createFleet, type Fleet } from './fleet.js';

let sim: SimulatorHandle | undefined;
let fleet: Fleet | undefined;
afterEach(async () => {
  fleet?.stop();
  await sim?.close();
});


function start(url: string, models?: string[]) {
  fleet = createFleet({
    config: parseConfig({
      backends: [{ name: 'a', url, ...(models ? { models } : {}) }],
      scraping: { intervalMs: 20, timeoutMs: 200, staleAfterMs: 100, unhealthyAfterFailures: 2 },
    }),
    logger: silentLogger,
  });
  fleet.start();
  return fleet.backends()[0]!;
}

describe('fleet scraping and health', () => {
  it('reads models from /v1/models and load from /metrics', async () => {
    sim = await startSimulator({ models: ['m1', 'm2'] });
    const b = start(sim.url);
    await waitFor(() => b.health === 'healthy' && b.metrics !== undefined, 3000, 'a scrape');
    expect(b.models).toEqual(['m1', 'm2']);
    expect(b.endpoint).toBe(`127.0.0.1:${sim.port}`);
    expect(isRoutable(b)).toBe(true);
  });

  it('reads the cards of models the config names (an adapter is known by its parent), their absence no failure', async () => {
    sim = await startSimulator({ models: ['m'], loraModules: [{ name: 'sql', path: '/adapters/sql' }] });
    const b = start(sim.url, ['m', 'sql']);
    await waitFor(() => b.cards.length > 0, 3000, 'cards read');
    expect(b.models).toEqual(['m', 'sql']);
    expect(b.cards.find((c) => c.id === 'sql')).toMatchObject({ parent: 'm', root: '/adapters/sql' });
    // A server that lists nothing: the configured models stand, and it stays healthy.
    sim.setFault({ kind: 'no-models' });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.health).toBe('healthy');
    expect(b.models).toEqual(['m', 'sql']);
  });

  it("does not announce a change when only vLLM's per-call permission id differs", async () => {
    sim = await startSimulator({ models: ['m'] });
    fleet = createFleet({
      config: parseConfig({ backends: [{ name: 'a', url: sim.url }], scraping: { intervalMs: 20, modelsRefreshMs: 100 } }),
      logger: silentLogger,
    });
    let changes = 0;
    fleet.onChange(() => changes++);
    fleet.start();
    const b = fleet.backends()[0]!;
    await waitFor(() => b.health === 'healthy' && b.models.length > 0, 3000, 'models read');
    const settled = changes;
    await new Promise((r) => setTimeout(r, 600)); // five model refreshes
    expect(changes).toBe(settled);
    expect(b.cards[0]).toMatchObject({ id: 'm', max_model_len: expect.any(Number) });
  });

  it('keeps a backend whose /metrics is garbage in rotation, scored without metrics', async () => {
    sim = await startSimulator({ models: ['m'] });
    const b = start(sim.url, ['m']);
    await waitFor(() => b.metrics !== undefined, 3000, 'metrics');
    sim.setFault({ kind: 'garbage-metrics' });
    await waitFor(() => b.metrics === undefined, 3000, 'stale metrics');
    expect(b.health).toBe('healthy');
    expect(b.metricsError).toMatch(/vllm:num_requests_running/);
    sim.setFault({ kind: 'slow-metrics', delayMs: 1000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.health).toBe('healthy');
    expect(b.metricsError).toMatch(/timed out/);
    sim.setFault({ kind: 'none' });
    await waitFor(() => b.metrics !== undefined && b.metricsError === undefined, 3000, 'metrics again');
  });

  it('takes a backend out of rotation when /health fails, and back when it recovers', async () => {
    sim = await startSimulator({ models: ['m'] });
    const b = start(sim.url, ['m']);
    await waitFor(() => b.health === 'healthy', 3000, 'healthy');
    sim.setFault({ kind: 'error', status: 503 });
    await waitFor(() => b.health === 'unhealthy', 3000, 'unhealthy');
    expect(b.lastError).toMatch(/503/);
    expect(b.stoppedAnswering).toBe(false); // it answers, with errors
    sim.setFault({ kind: 'none' });
    await waitFor(() => b.health === 'healthy', 3000, 'healthy again');
  });

  it('marks a backend suspect as soon as a health probe is overdue, long before it leaves rotation', async () => {
    sim = await startSimulator({ models: ['m'] });
    fleet = createFleet({
      config: parseConfig({
        backends: [{ name: 'a', url: sim.url, models: ['m'] }],
        scraping: { intervalMs: 20, timeoutMs: 2000, suspectAfterMs: 100, unhealthyAfterFailures: 3 },
      }),
      logger: silentLogger,
    });
    fleet.start();
    const b = fleet.backends()[0]!;
    await waitFor(() => b.health === 'healthy', 3000, 'healthy');
    expect(b.suspect).toBe(false);
    sim.setFault({ kind: 'hang' }); // accepts, never answers
    const hungAt = Date.now();
    await waitFor(() => b.suspect, 1000, 'suspect');
    expect(Date.now() - hungAt).toBeLessThan(600);
    expect(b.health).toBe('healthy'); // the probe has not even timed out yet
    await waitFor(() => b.consecutiveFailures > 0, 5000, 'a probe timed out');
    expect(b.stoppedAnswering).toBe(true);
    sim.setFault({ kind: 'none' });
    await waitFor(() => !b.suspect, 5000, 'no longer suspect after a good answer');
    expect(b.stoppedAnswering).toBe(false);
  });

  it('does not take a backend that answers its probes slowly for a hung one, and still catches a hang', async () => {
    sim = await startSimulator({ models: ['m'] });
    fleet = createFleet({
      config: parseConfig({
        backends: [{ name: 'a', url: sim.url, models: ['m'] }],
        scraping: { intervalMs: 20, timeoutMs: 1000, suspectAfterMs: 100, unhealthyAfterFailures: 3 },
      }),
      logger: silentLogger,
    });
    fleet.start();
    const b = fleet.backends()[0]!;
    await waitFor(() => b.health === 'healthy', 3000, 'healthy');
    // A busy server's API process answers in 150-250 ms: past suspectAfterMs, but answering.
    sim.setFault({ kind: 'slow-health', delayMs: 150 });
    await new Promise((r) => setTimeout(r, 400)); // its first slow answers teach the patience
    sim.setFault({ kind: 'slow-health', delayMs: 250 });
    let suspectSeen = 0;
    const watchUntil = Date.now() + 1500;
    while (Date.now() < watchUntil) {
      if (b.suspect) suspectSeen++;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(suspectSeen).toBe(0);
    sim.setFault({ kind: 'hang' });
    const hungAt = Date.now();
    await waitFor(() => b.suspect, 2000, 'suspect');
    expect(Date.now() - hungAt).toBeLessThan(1000); // twice the slowest answer, within the probe timeout
  });

  it('marks a backend that refuses connections unhealthy, and readmits it on the same port', async () => {
    sim = await startSimulator({ models: ['m'] });
    const port = sim.port;
    const b = start(sim.url, ['m']);
    await waitFor(() => b.health === 'healthy', 3000, 'healthy');
    await sim.close();
    await waitFor(() => b.health === 'unhealthy', 3000, 'unhealthy');
    expect(b.lastError).toMatch(/ECONNREFUSED|fetch failed/);
    // Refusing is not hanging: what it held has failed, and Envoy has retried it elsewhere.
    expect(b.stoppedAnswering).toBe(false);
    sim = await startSimulator({ models: ['m'], port });
    await waitFor(() => b.health === 'healthy', 3000, 'healthy again');
  });
});

describe('dns discovery', () => {
  it('follows the addresses a name resolves to, and keeps the last good set when resolution fails', async () => {
    sim = await startSimulator({ models: ['m'] });
    let answer: () => Promise<string[]> = async () => ['127.0.0.1'];
    fleet = createFleet({
      config: parseConfig({
        discovery: { dns: [{ name: 'vllm.example.internal', port: sim.port, refreshMs: 100 }] },
        scraping: { intervalMs: 20, timeoutMs: 200, unhealthyAfterFailures: 2 },
      }),
      logger: silentLogger,
      resolveAll: (name) => (name === 'vllm.example.internal' ? answer() : Promise.reject(new Error('unexpected name'))),
    });
    fleet.start();
    const ids = () => fleet!.backends().map((b) => b.id).sort();
    await waitFor(() => fleet!.backends().length === 1 && fleet!.backends()[0]!.health === 'healthy', 3000, 'the discovered backend');
    expect(ids()).toEqual([`vllm.example.internal/127.0.0.1:${sim.port}`]);
    expect(fleet.backends()[0]!.models).toEqual(['m']); // read from its /v1/models

    answer = () => Promise.reject(Object.assign(new Error('queryA ETIMEOUT'), { code: 'ETIMEOUT' }));
    await new Promise((r) => setTimeout(r, 350));
    expect(ids()).toEqual([`vllm.example.internal/127.0.0.1:${sim.port}`]);
    expect(fleet.backends()[0]!.health).toBe('healthy');

    answer = async () => ['127.0.0.2', '127.0.0.1'];
    await waitFor(() => fleet!.backends().length === 2, 3000, 'a second address');
    answer = async () => ['127.0.0.2'];
    await waitFor(() => ids().join() === `vllm.example.internal/127.0.0.2:${sim!.port}`, 3000, 'the vanished address to leave');
  });
});

describe('kubernetes discovery (against a local fake API server speaking list and watch)', () => {
  it('follows ready pods by label, takes models from a label, and survives bad events and dropped watches', async () => {
    const { startFakeKubeApi } = await import('../../test/helpers/fake-kube-api.js');
    const api = await startFakeKubeApi('inference');
    sim = await startSimulator({ models: ['llama-8b'] });
    try {
      api.addPod('vllm-0', '127.0.0.1', { app: 'vllm', model: 'llama-8b' });
      api.addPod('other-0', '127.0.0.9', { app: 'something-else' });
      fleet = createFleet({
        config: parseConfig({
          discovery: { kubernetes: [{ namespace: 'inference', labelSelector: 'app=vllm', port: sim.port, modelLabel: 'model', apiServer: api.url }] },
          scraping: { intervalMs: 20, timeoutMs: 200, unhealthyAfterFailures: 2 },
        }),
        logger: silentLogger,
      });
      fleet.start();
      const ids = () => fleet!.backends().map((b) => b.id).sort();
      await waitFor(() => fleet!.backends()[0]?.health === 'healthy', 5000, 'the pod to be discovered and healthy');
      expect(ids()).toEqual(['inference/vllm-0']);
      expect(fleet.backends()[0]!).toMatchObject({ url: `http://127.0.0.1:${sim.port}`, models: ['llama-8b'] });

      // A pod that is not ready yet is not a backend; once ready, it is.
      api.addPod('vllm-1', '127.0.0.2', { app: 'vllm', model: 'llama-8b' }, false);
      await new Promise((r) => setTimeout(r, 200));
      expect(ids()).toEqual(['inference/vllm-0']);
      api.setReady('vllm-1', true);
      await waitFor(() => fleet!.backends().length === 2, 3000, 'the pod to become ready');

      // Garbage on the watch and a dropped watch change nothing...
      api.sendGarbage();
      api.dropWatches();
      await new Promise((r) => setTimeout(r, 300));
      expect(ids()).toEqual(['inference/vllm-0', 'inference/vllm-1']);
      expect(fleet.backends().find((b) => b.id === 'inference/vllm-0')!.health).toBe('healthy');
      // ...and the watch resumes: a deleted pod leaves rotation.
      api.deletePod('vllm-1');
      await waitFor(() => ids().join() === 'inference/vllm-0', 5000, 'the deleted pod to leave');

      // A pod without the model label is still a backend; its models come from /v1/models.
      api.addPod('vllm-2', '127.0.0.1', { app: 'vllm' });
      await waitFor(() => fleet!.backends().some((b) => b.id === 'inference/vllm-2' && b.models.join() === 'llama-8b'), 5000, 'the unlabelled pod');
    } finally {
      fleet?.stop();
      await api.close();
    }
  });
});
