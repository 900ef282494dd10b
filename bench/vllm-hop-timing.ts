/**
 * How long the router's hop takes on a real-vLLM fleet, in Envoy's own clock: an access log
 * records, for each request, the time from the end of the client's body to the first byte sent
 * upstream (the ext_proc round trip; near zero with Envoy alone) and to the first byte back,
 * alternating the router and Envoy's least request. Also prints the router's decision time and
 * event-loop delay from its /metrics. Two real vLLM servers, one core each, random prompts.
 *
 *   npx tsx bench/vllm-hop-timing.ts [--requests 120] [--rounds 2]
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closeClient, drive } from './client.js';
import { STRATEGIES, startRoutingLayer } from './stack.js';
import { startVllmFleet } from './vllm-fleet.js';
import { randomPrompts } from './workloads.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '120' }, rounds: { type: 'string', default: '2' } } });
const REQUESTS = Number(values.requests);
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.floor(p * (values.length - 1))] ?? NaN;
// Envoy's timestamps: downstream body received, first byte to the upstream, first byte back.
const FORMAT = '%COMMON_DURATION(DS_RX_END:US_TX_BEG:us)% %COMMON_DURATION(US_TX_BEG:US_RX_BEG:us)%\n';

const fleet = await startVllmFleet(2, 'tiny');
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const name of ['ours', 'envoy-least-request']) {
      await fleet.resetCaches();
      const log = join(tmpdir(), `vllm-hop-${process.pid}-${round}-${name}.log`);
      const layer = await startRoutingLayer(fleet.servers, STRATEGIES.find((s) => s.name === name)!, {
        ownSessions: true,
        editEnvoy: (bootstrap) => {
          const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
          hcm.access_log = [{ name: 'envoy.access_loggers.file', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: log, log_format: { text_format_source: { inline_string: FORMAT } } } }];
        },
      });
      const workload = randomPrompts(round, 'vllm', { model: 'tiny', servers: 2 });
      workload.sessions = workload.sessions.slice(0, REQUESTS);
      const { results, durationS: seconds } = await drive(layer.url, workload, Date.now() + 120_000);
      const ttfts = results.filter((r) => r.ok).map((r) => r.ttftMs);
      const page = await fetch(`${layer.routerAdmin}/metrics`).then((r) => r.text());
      await layer.stop();
      const rows = readFileSync(log, 'utf8').trim().split('\n').map((line) => line.split(' ').map((us) => Number(us) / 1000));
      rmSync(log, { force: true });
      const metric = (n: string) => Number(page.split('\n').find((l) => l.startsWith(`${n} `))?.split(' ')[1]);
      const hop = rows.map((r) => r[0]!);
      const upstream = rows.map((r) => r[1]!);
      const router =
        name === 'ours'
          ? ` | decision ${((metric('vllm_router_decision_seconds_sum') / metric('vllm_router_decision_seconds_count')) * 1000).toFixed(2)} ms, ` +
            `event-loop delay p99 ${(metric('vllm_router_process_nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(0)} ms, max ${(metric('vllm_router_process_nodejs_eventloop_lag_max_seconds') * 1000).toFixed(0)} ms`
          : '';
      console.log(
        `${name.padEnd(20)} ${(ttfts.length / seconds).toFixed(2)} req/s, TTFT p50 ${percentile(ttfts, 0.5).toFixed(1)} ms | ` +
          `body end -> upstream p50 ${percentile(hop, 0.5).toFixed(2)} p90 ${percentile(hop, 0.9).toFixed(2)} p99 ${percentile(hop, 0.99).toFixed(2)} ms | ` +
          `upstream first byte p50 ${percentile(upstream, 0.5).toFixed(1)} ms${router}`,
      );
    }
  }
} finally {
  closeClient();
  await fleet.stop();
}
