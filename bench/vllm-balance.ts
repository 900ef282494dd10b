/**
 * How evenly the router spreads requests over real vLLM servers: random prompts (nothing to
 * cache, so balance is all that matters) from 4 closed-loop clients, while the router's
 * in-flight count per server is sampled every 50 ms from its /stats; Envoy's least request
 * alternates with it for the throughput beside. Two real vLLM servers, one core each.
 *
 *   npx tsx bench/vllm-balance.ts [--requests 100] [--rounds 2]
 */
import { parseArgs } from 'node:util';
import { closeClient, drive } from './client.js';
import { countersSince, readCounters } from './server-counters.js';
import { STRATEGIES, startRoutingLayer } from './stack.js';
import { startVllmFleet } from './vllm-fleet.js';
import { randomPrompts } from './workloads.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '100' }, rounds: { type: 'string', default: '2' } } });

const fleet = await startVllmFleet(2, 'tiny');
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const name of ['ours', 'envoy-least-request']) {
      await fleet.resetCaches();
      const layer = await startRoutingLayer(fleet.servers, STRATEGIES.find((s) => s.name === name)!, { ownSessions: true });
      const before = await Promise.all(fleet.servers.map((s) => readCounters(s.url)));
      // "a/b": requests in flight on each server, as the router counts them (Envoy alone: none).
      const samples = new Map<string, number>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const stats = (await fetch(`${layer.routerAdmin}/stats`).then((r) => r.json())) as { backends: Array<{ inflight: number }> };
          const key = stats.backends.map((b) => b.inflight).join('/');
          samples.set(key, (samples.get(key) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const workload = randomPrompts(100 + round, 'vllm', { model: 'tiny', servers: 2 });
      workload.sessions = workload.sessions.slice(0, Number(values.requests));
      const { results, durationS } = await drive(layer.url, workload, Date.now() + 120_000);
      const ok = results.filter((r) => r.ok).length;
      sampling = false;
      await sampler;
      const after = await Promise.all(fleet.servers.map((s) => readCounters(s.url)));
      await layer.stop();
      const served = after.map((a, i) => countersSince(before[i]!, a).served).join('/');
      const total = [...samples.values()].reduce((a, b) => a + b, 0);
      const byShare = [...samples.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ');
      console.log(`${name.padEnd(20)} ${(ok / durationS).toFixed(2)} req/s, served ${served} | in flight (of ${total} samples) ${byShare}`);
    }
  }
} finally {
  closeClient();
  await fleet.stop();
}
