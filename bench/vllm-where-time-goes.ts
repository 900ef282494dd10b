/**
 * Where the time goes on a CPU-bound real-vLLM fleet: the same serial requests sent straight to
 * the servers, through Envoy alone (least request), and through Envoy with the router, with the
 * CPU seconds every process used in each phase (from /proc). Two real vLLM servers, one core each.
 *
 *   npx tsx bench/vllm-where-time-goes.ts [--requests 30] [--interval-ms 200]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startStack, type Stack } from '../test/helpers/stack.js';
import { startVllmServers, type VllmServer } from '../test/helpers/vllm.js';
import { cpuSecondsOf } from './proc-cpu.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '30' }, 'interval-ms': { type: 'string', default: '200' } } });
const REQUESTS = Number(values.requests);

/** CPU seconds (user+system) of every process whose command line matches, by label. */
function cpuSeconds(): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      const label = cmd.includes('envoy') && !cmd.includes('node') ? 'envoy' : pid === String(process.pid) ? 'router+client (this process)' : cmd.includes('vllm.entrypoints') ? 'vLLM API server' : comm.startsWith('VLLM') || cmd.includes('EngineCore') || comm.includes('Engine') ? `vLLM ${comm}` : undefined;
      if (label) out.set(label, (out.get(label) ?? 0) + cpuSecondsOf(Number(pid)));
    } catch {
      /* gone */
    }
  }
  return out;
}

const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
const systemPrompt = (p: number) => `System ${p}: ` + Array.from({ length: 300 }, (_, i) => words[(i * 3 + p) % words.length]).join(' ');

async function serial(url: string, tag: string) {
  const started = performance.now();
  const ttfts: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'system', content: systemPrompt(i % 10) }, { role: 'user', content: `${tag} question ${i}` }], max_tokens: 16, stream: true }),
      signal: AbortSignal.timeout(60_000),
    });
    if (res.status !== 200) throw new Error(`${tag}: ${res.status} ${await res.text()}`);
    const reader = res.body!.getReader();
    let first = true;
    for (;;) {
      const { done } = await reader.read();
      if (first) {
        ttfts.push(performance.now() - t0);
        first = false;
      }
      if (done) break;
    }
  }
  ttfts.sort((a, b) => a - b);
  return { seconds: (performance.now() - started) / 1000, ttftP50: ttfts[Math.floor(ttfts.length / 2)]! };
}

async function phase(name: string, run: () => Promise<{ seconds: number; ttftP50: number }>) {
  const before = cpuSeconds();
  const r = await run();
  const after = cpuSeconds();
  const cpu = [...after].map(([k, v]) => `${k} ${(v - (before.get(k) ?? 0)).toFixed(2)}s`).join(', ');
  console.log(`${name.padEnd(34)} ${r.seconds.toFixed(2)} s for ${REQUESTS}, TTFT p50 ${r.ttftP50.toFixed(0)} ms | CPU: ${cpu}`);
}

let servers: VllmServer[] = [];
let stack: Stack | undefined;
try {
  servers = await startVllmServers(2, { model: 'tiny', kvBlocks: 1024 });
  const direct = (tag: string) => () => serial(servers[0]!.url, tag);
  await serial(servers[0]!.url, 'warm-up');
  await serial(servers[1]!.url, 'warm-up');
  await phase('direct to one server, no router', direct('direct'));
  const backends = servers.map(() => ({ models: ['tiny'], declareModels: false }));
  const backendUrls = servers.map((s) => s.url);
  const scraping = { intervalMs: Number(values['interval-ms']) };
  stack = await startStack({ backends, backendUrls, config: { scraping }, readyTimeoutMs: 30_000 });
  await phase('direct, router scraping both', direct('direct-scraped'));
  await phase('Envoy + router', () => serial(stack!.envoy.url, 'router'));
  await stack.close();
  stack = await startStack({
    backends,
    backendUrls,
    config: { scraping, upstream: { fallbackPolicy: 'least_request' } },
    readyTimeoutMs: 30_000,
    envoy: {
      edit: (bootstrap) => {
        const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
        hcm.http_filters = hcm.http_filters.filter((f: { name: string }) => !f.name.includes('ext_proc'));
      },
    },
  });
  await phase('Envoy least request (no ext_proc)', () => serial(stack!.envoy.url, 'least-request'));
} finally {
  await stack?.close();
  await Promise.all(servers.map((s) => s.stop()));
}
