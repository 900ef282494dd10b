/**
 * Overhead benchmark: what the router adds to every request, against Envoy alone, in one run.
 * Instant backends on loopback; the same bounded open-loop client for every configuration:
 *   1. direct to one backend (no proxy)
 *   2. Envoy alone, least request, no ext_proc (the limit)
 *   3. Envoy + router, with short chats, 8k-token and 100k-token prompts
 *
 *   npm run bench:overhead [-- --quick]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { BackendView } from '../src/fleet/backend.js';
import { parseRequestBody } from '../src/extproc/parse-request.js';
import { REPO, startEnvoy, type EnvoyHandle } from '../src/launcher/envoy.js';
import { stopChildren, waitForHttp } from '../src/launcher/processes.js';
import { createSchedulerMemory, schedulerFromConfig } from '../src/scheduling/registry.js';
import { freePort } from './stack.js';
import { prng, text } from './workloads.js';

const agent = new Agent({ keepAlive: true, maxSockets: 512 });
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

function body(kind: 'short' | '8k' | '100k', stream: boolean): string {
  const random = prng(kind.length);
  const content = kind === 'short' ? 'Say hello in one word.' : text(random, kind === '8k' ? 8_000 : 100_000);
  // `stream` first: the instant backend sniffs the first bytes for it.
  return JSON.stringify({ stream, model: 'm', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content }], max_tokens: 1 });
}

function send(url: string, payload: string): Promise<{ ok: boolean; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      `${url}/v1/chat/completions`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ ok: res.statusCode === 200, ms: performance.now() - started }));
        res.on('error', () => resolve({ ok: false, ms: performance.now() - started }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ok: false, ms: performance.now() - started }));
    req.end(payload);
  });
}

/** Open loop: `rate` requests per second for `seconds`, each sent on schedule whatever the others do. */
async function fixedRate(url: string, payload: string, rate: number, seconds: number) {
  const total = Math.round(rate * seconds);
  const results: Array<Promise<{ ok: boolean; ms: number }>> = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    results.push(send(url, payload));
  }
  const done = await Promise.all(results);
  const elapsed = (performance.now() - start) / 1000;
  const ms = done.filter((d) => d.ok).map((d) => d.ms).sort((a, b) => a - b);
  return { sent: total, ok: ms.length, achievedRate: round(ms.length / elapsed, 1), p50: round(pct(ms, 50)), p99: round(pct(ms, 99)) };
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return round(Number(line.split(/\s+/)[1]) / 1024, 1);
}

/** Decisions per second of parse + schedule in this process, for one body. */
function decisionsPerSecond(payload: string, budgetMs: number): number {
  const config = parseConfig({ backends: [] });
  const scheduler = schedulerFromConfig(config, createSchedulerMemory(config));
  const fleet: BackendView[] = Array.from({ length: 4 }, (_, i) => ({
    id: `b${i}`,
    endpoint: `10.0.0.${i}:8000`,
    models: ['m'],
    health: 'healthy',
    capacity: 256,
    metrics: { running: i, waiting: 0, kvCacheUsage: 0.1, prefixCacheQueries: 0, prefixCacheHits: 0, promptTokensTotal: 0, blockSize: 16, numGpuBlocks: 65536, modelNames: ['m'] },
    inflight: 0,
    unseenDispatches: 0,
    queueing: false,
  }));
  const bytes = Buffer.from(payload);
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    const parsed = parseRequestBody(bytes, { contentType: 'application/json' });
    if (!parsed.ok) throw new Error(parsed.error.message);
    scheduler.schedule(parsed.request, fleet);
    n++;
  }
  return Math.round(n / ((performance.now() - start) / 1000));
}

function child(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, out: { type: 'string' } } });
  const quick = values.quick!;
  const seconds = quick ? 2 : 6;
  const out = values.out ?? `bench/results/overhead${quick ? '-quick' : ''}.json`;
  const children: ChildProcess[] = [];
  const envoys: EnvoyHandle[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'bench-overhead-'));
  const started = Date.now();
  try {
    const ports = [await freePort(), await freePort()];
    for (const port of ports) children.push(child(['--import', 'tsx', join(REPO, 'bench/instant-backend.ts'), String(port)]));
    await Promise.all(ports.map((p) => waitForHttp(`http://127.0.0.1:${p}/health`, 'instant backend')));
    const grpcPort = await freePort();
    const adminPort = await freePort();
    const configPath = join(dir, 'router.yaml');
    await writeFile(
      configPath,
      stringify({
        grpc: { host: '127.0.0.1', port: grpcPort },
        admin: { host: '127.0.0.1', port: adminPort },
        backends: ports.map((p, i) => ({ name: `instant-${i}`, url: `http://127.0.0.1:${p}`, models: ['m'] })),
      }),
    );
    // ROUTER_NODE_OPTIONS, e.g. '--cpu-prof --cpu-prof-dir=.tmp/prof', profiles the router under this load.
    const router = child([...(process.env.ROUTER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []), join(REPO, 'dist/main.js'), '--config', configPath, '--log-level', 'warn']);
    children.push(router);
    await waitForHttp(`http://127.0.0.1:${adminPort}/health`, 'router');
    const controlPlane = { host: '127.0.0.1', port: grpcPort };
    const withRouter = await startEnvoy({ controlPlane, concurrency: 1 });
    const alone = await startEnvoy({
      controlPlane,
      concurrency: 1,
      edit: (b) => {
        const hcm = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
        hcm.http_filters = hcm.http_filters.filter((f: { name: string }) => f.name !== 'envoy.filters.http.ext_proc');
      },
    });
    envoys.push(withRouter, alone);
    const direct = `http://127.0.0.1:${ports[0]}`;

    // Warm every path (connections, JIT) before measuring.
    for (const url of [direct, alone.url, withRouter.url]) await fixedRate(url, body('short', false), 200, 1);

    const rows: Array<Record<string, unknown>> = [];
    const measure = async (name: string, url: string, kind: 'short' | '8k' | '100k', stream: boolean, rate: number) => {
      const payload = body(kind, stream);
      const cpu0 = cpuMs(router.pid!);
      const r = await fixedRate(url, payload, rate, seconds);
      const routerCpuPer1000 = round(((cpuMs(router.pid!) - cpu0) / r.sent) * 1000, 1);
      const row = { config: name, body: kind, stream, rate, ...r, routerCpuMsPer1000: routerCpuPer1000, routerRssMiB: rssMiB(router.pid!) };
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
      return row;
    };

    const RATE = 500;
    const results: Record<string, Awaited<ReturnType<typeof measure>>> = {};
    for (const stream of [false, true]) {
      const s = stream ? 'stream' : 'plain';
      results[`direct-${s}`] = await measure('direct', direct, 'short', stream, RATE);
      results[`envoy-${s}`] = await measure('envoy alone', alone.url, 'short', stream, RATE);
      results[`router-${s}`] = await measure('envoy + router', withRouter.url, 'short', stream, RATE);
    }
    // Large prompts cost bandwidth on every hop: measured at rates this machine sustains for all three.
    for (const [kind, rate] of [['8k', 200], ['100k', 25]] as const) {
      results[`direct-${kind}`] = await measure('direct', direct, kind, false, rate);
      results[`envoy-${kind}`] = await measure('envoy alone', alone.url, kind, false, rate);
      results[`router-${kind}`] = await measure('envoy + router', withRouter.url, kind, false, rate);
    }

    // Max sustained rate before p99 doubles (against its own p99 at the lowest rate).
    const ramp = async (url: string) => {
      const steps = quick ? [500, 1000, 2000] : [500, 1000, 1500, 2000, 3000, 4000];
      let base = NaN;
      let sustained = 0;
      for (const rate of steps) {
        const r = await fixedRate(url, body('short', false), rate, quick ? 1.5 : 3);
        if (Number.isNaN(base)) base = r.p99;
        if (r.ok < r.sent || r.achievedRate < rate * 0.9 || r.p99 > 2 * base) break;
        sustained = rate;
      }
      return sustained;
    };
    const maxRate = { envoyAlone: await ramp(alone.url), envoyRouter: await ramp(withRouter.url) };

    const added = (key: string) => ({
      envoyP50: round((results[`envoy-${key}`]!.p50 as number) - (results[`direct-${key}`]!.p50 as number)),
      envoyP99: round((results[`envoy-${key}`]!.p99 as number) - (results[`direct-${key}`]!.p99 as number)),
      routerP50: round((results[`router-${key}`]!.p50 as number) - (results[`direct-${key}`]!.p50 as number)),
      routerP99: round((results[`router-${key}`]!.p99 as number) - (results[`direct-${key}`]!.p99 as number)),
      routerOverEnvoyP50: round((results[`router-${key}`]!.p50 as number) - (results[`envoy-${key}`]!.p50 as number)),
      p99RatioRouterToEnvoy: round((results[`router-${key}`]!.p99 as number) / (results[`envoy-${key}`]!.p99 as number), 2),
    });
    const summary = { short: added('plain'), shortStream: added('stream'), '8k': added('8k'), '100k': added('100k') };
    const decisions = {
      short: decisionsPerSecond(body('short', false), quick ? 300 : 1000),
      '8k': decisionsPerSecond(body('8k', false), quick ? 300 : 1000),
      '100k': decisionsPerSecond(body('100k', false), quick ? 300 : 1000),
    };
    const report = {
      command: `npm run bench:overhead${quick ? ' -- --quick' : ''}`,
      date: new Date().toISOString(),
      quick,
      secondsPerRun: seconds,
      note: 'latencies in ms; added = configuration minus direct; Envoy runs one worker thread; 2 cores shared by everything',
      runs: rows,
      addedLatencyMs: summary,
      maxSustainedRatePerS: maxRate,
      schedulerDecisionsPerSecondInProcess: decisions,
      elapsedS: round((Date.now() - started) / 1000, 1),
    };
    await mkdir(join(REPO, 'bench/results'), { recursive: true });
    await writeFile(join(REPO, out), JSON.stringify(report, null, 2) + '\n');
    console.log('added latency over direct (ms)      envoy p50  envoy p99  router p50  router p99  router-envoy p50  p99 router/envoy');
    for (const [k, v] of Object.entries(summary)) {
      console.log(
        `${k.padEnd(34)} ${String(v.envoyP50).padStart(9)} ${String(v.envoyP99).padStart(10)} ${String(v.routerP50).padStart(11)} ${String(v.routerP99).padStart(11)} ${String(v.routerOverEnvoyP50).padStart(17)} ${String(v.p99RatioRouterToEnvoy).padStart(16)}`,
      );
    }
    console.log(`max sustained req/s before p99 doubles: envoy alone ${maxRate.envoyAlone}, envoy + router ${maxRate.envoyRouter}`);
    console.log(`router CPU ms per 1000 requests (short, 500/s): ${results['router-plain']!.routerCpuMsPer1000}; RSS ${results['router-plain']!.routerRssMiB} MiB`);
    console.log(`scheduler decisions/s in-process (parse + schedule): ${JSON.stringify(decisions)}`);
    console.log(`wrote ${out} in ${report.elapsedS} s`);
  } finally {
    for (const e of envoys) await e.stop();
    await stopChildren(children);
    agent.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
