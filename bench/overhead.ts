/**
 * Overhead benchmark: what the router adds to every request, against Envoy alone, in one run.
 * Instant backends on loopback; the same bounded open-loop client for every configuration:
 *   1. direct to one backend (no proxy)
 *   2. Envoy alone: a plain proxy, one static cluster, least request, no body filters (the limit)
 *   3. Envoy + router (the repo's bootstrap), with short chats, 8k-token and 100k-token prompts
 *   4. Envoy + router with the model's tokenizer configured (prompts tokenized as vLLM does),
 *      on the same 8k-token prompt repeated (its text cached) and on unique ones (nothing cached)
 * Configurations take turns in short rounds, each starting one configuration later, so drift
 * in a shared machine's speed falls on all of them alike. Also: router CPU and memory per
 * request, decisions/s in process, and the router's heap across 1M requests driven through
 * its ext_proc handler in process.
 *
 *   npm run bench:overhead [-- --quick]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { stringify } from 'yaml';
import { createDecisionLog } from '../src/admin/decision-log.js';
import { createRouterMetrics } from '../src/admin/metrics.js';
import { parseConfig } from '../src/config/load.js';
import type { BackendView } from '../src/fleet/backend.js';
import { createFleet } from '../src/fleet/fleet.js';
import { parseRequestBody } from '../src/extproc/parse-request.js';
import { createProcessor } from '../src/extproc/processor.js';
import { ProcessingRequest, type ProcessingResponse } from '../src/gen/envoy/service/ext_proc/v3/external_processor.js';
import { silentLogger } from '../src/support/log.js';
import { REPO, startEnvoy, type EnvoyHandle } from '../src/launcher/envoy.js';
import { stopChildren, waitForHttp } from '../src/launcher/processes.js';
import { createSchedulerMemory } from '../src/scheduling/memory.js';
import { loadModelTokenizer } from '../src/tokenize/model-tokenizer.js';
import { promptTokens } from '../src/tokenize/prompt-tokens.js';
import { loadTokenizerSet } from '../src/tokenize/tokenizer-set.js';
import { schedulerFromConfig } from '../src/scheduling/registry.js';
import { backendView, vllmLoad } from '../test/helpers/backend-view.js';
import { FakeStream } from '../test/helpers/fake-stream.js';
import { freePort } from './stack.js';
import { cpuSecondsOf } from './proc-cpu.js';
import { prng, text } from './workloads.js';

const agent = new Agent({ keepAlive: true, maxSockets: 512 });

interface Row {
  config: string;
  body: string;
  stream: boolean;
  rate: number;
  sent: number;
  ok: number;
  achievedRate: number;
  p50: number;
  p99: number;
  routerCpuMsPer1000: number;
  routerRssMiB: number;
}
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

const TOKENIZER_DIR = join(REPO, 'test/fixtures/tiny-tokenizer');

/** Text of `tokens` tokens as the benchmark's tokenizer counts them (the generator's unit is an estimate). */
function textOfTokens(tokens: number): string {
  const tokenizer = loadModelTokenizer(TOKENIZER_DIR, 0);
  let [low, high] = [1, tokens];
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (tokenizer.encode(text(prng(2), mid), false).length <= tokens) low = mid;
    else high = mid - 1;
  }
  return text(prng(2), low);
}
const TEXT_8K = textOfTokens(8_000);

/** A chat body; `unique` puts a request number first, so no prefix of it was seen before. */
function body(kind: 'short' | '8k' | '100k', stream: boolean, unique?: number): string {
  const random = prng(kind.length);
  const content = kind === 'short' ? 'Say hello in one word.' : kind === '8k' ? TEXT_8K : text(random, 100_000);
  const user = unique === undefined ? content : `Request ${unique}. ${content}`;
  // `stream` first: the instant backend sniffs the first bytes for it.
  return JSON.stringify({ stream, model: 'm', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: user }], max_tokens: 1 });
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
async function fixedRate(url: string, payload: string | ((i: number) => string), rate: number, seconds: number) {
  const total = Math.round(rate * seconds);
  const results: Array<Promise<{ ok: boolean; ms: number }>> = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    results.push(send(url, typeof payload === 'string' ? payload : payload(i)));
  }
  const done = await Promise.all(results);
  const elapsed = (performance.now() - start) / 1000;
  const ms = done.filter((d) => d.ok).map((d) => d.ms).sort((a, b) => a - b);
  return { sent: total, ok: ms.length, seconds: elapsed, ms, achievedRate: round(ms.length / elapsed, 1), p50: round(pct(ms, 50)), p99: round(pct(ms, 99)) };
}

const cpuMs = (pid: number) => 1000 * cpuSecondsOf(pid);

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return round(Number(line.split(/\s+/)[1]) / 1024, 1);
}

/** Decisions per second of parse + schedule in this process, for one body. */
function decisionsPerSecond(payload: string, budgetMs: number, tokenizers: Record<string, string> = {}): number {
  const config = parseConfig({ backends: [] });
  const tokenizer = loadTokenizerSet(tokenizers).forModel('m');
  const scheduler = schedulerFromConfig(config, createSchedulerMemory(config));
  const fleet: BackendView[] = Array.from({ length: 4 }, (_, i) =>
    backendView(`b${i}`, {
      endpoint: `10.0.0.${i}:8000`,
      capacity: 256,
      metrics: vllmLoad(i, 0, { kvCacheUsage: 0.1, prefixCacheQueries: 0, prefixCacheHits: 0, promptTokensTotal: 0, requestsCompleted: 0, numGpuBlocks: 65536, modelNames: ['m'] }),
    }),
  );

  const bytes = Buffer.from(payload);
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    const parsed = parseRequestBody(bytes, { contentType: 'application/json' });
    if (!parsed.ok) throw new Error(parsed.error.message);
    if (tokenizer) {
      const tokens = promptTokens(tokenizer, '/v1/chat/completions', bytes);
      if (!tokens.ok) throw new Error(tokens.why);
      if (parsed.request.prompt.kind === 'text') parsed.request.prompt = { kind: 'tokenizing', reader: tokens.reader, bytes: parsed.request.prompt.bytes };
    }
    scheduler.schedule(parsed.request, fleet);
    n++;
  }
  return Math.round(n / ((performance.now() - start) / 1000));
}

/**
 * The router's heap across `total` requests through its real ext_proc handler, in process, each
 * with a distinct prompt (so the prefix index fills and evicts), read after a full GC.
 */
async function heapAcrossRequests(total: number): Promise<Array<{ requests: number; heapMiB: number }>> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const config = parseConfig({ backends: Array.from({ length: 4 }, (_, i) => ({ name: `b${i}`, url: `http://10.0.0.${i + 1}:8000`, models: ['m'] })) });
  const fleet = createFleet({ config, logger: silentLogger });
  fleet.apply(config);
  await new Promise((r) => setTimeout(r, 0)); // IP-literal endpoints resolve at once
  const memory = createSchedulerMemory(config);
  const scheduler = schedulerFromConfig(config, memory);
  const handle = createProcessor({ fleet, scheduler: () => scheduler, config: () => config, metrics: createRouterMetrics(fleet), logger: silentLogger, version: 'bench', decisionLog: createDecisionLog() });
  const template = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `#000000000000 ${text(prng(3), 500)}` }] }));
  const counterAt = template.indexOf('#') + 1;
  const attributes = { 'envoy.filters.http.ext_proc': { 'request.method': 'POST', 'request.url_path': '/v1/chat/completions', "request.headers['content-type']": 'application/json' } };
  const readings: Array<{ requests: number; heapMiB: number }> = [];
  const read = (requests: number) => {
    gc();
    readings.push({ requests, heapMiB: round(process.memoryUsage().heapUsed / 2 ** 20, 1) });
  };
  read(0);
  for (let i = 1; i <= total; i++) {
    const call = new FakeStream<ProcessingRequest, ProcessingResponse>();
    handle(call);
    const payload = Buffer.from(template);
    payload.write(String(i).padStart(12, '0'), counterAt, 'latin1');
    call.emit('data', ProcessingRequest.fromPartial({ attributes, request: { $case: 'requestBody', value: { body: payload, endOfStream: true } } }));
    call.emit('end');
    if (i % (total / 10) === 0) read(i);
  }
  return readings;
}

function child(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, out: { type: 'string' } } });
  const quick = values.quick!;
  const seconds = quick ? 1.2 : 6;
  const rounds = quick ? 2 : 6;
  const out = values.out ?? `bench/results/overhead${quick ? '-quick' : ''}.json`;
  const children: ChildProcess[] = [];
  const envoys: EnvoyHandle[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'bench-overhead-'));
  const started = Date.now();
  try {
    const ports = [await freePort(), await freePort()];
    for (const port of ports) children.push(child(['--import', 'tsx', join(REPO, 'bench/instant-backend.ts'), String(port)]));
    await Promise.all(ports.map((p) => waitForHttp(`http://127.0.0.1:${p}/health`, 'instant backend')));
    const startRouterProcess = async (name: string, extra: Record<string, unknown>, backendExtra: (i: number) => Record<string, unknown> = () => ({})) => {
      const grpcPort = await freePort();
      const adminPort = await freePort();
      const configPath = join(dir, `${name}.yaml`);
      await writeFile(
        configPath,
        stringify({
          grpc: { host: '127.0.0.1', port: grpcPort },
          admin: { host: '127.0.0.1', port: adminPort },
          backends: ports.map((p, i) => ({ name: `instant-${i}`, url: `http://127.0.0.1:${p}`, models: ['m'], ...backendExtra(i) })),
          ...extra,
        }),
      );
      // ROUTER_NODE_OPTIONS, e.g. '--cpu-prof --cpu-prof-dir=.tmp/prof', profiles the router under this load.
      const proc = child([...(process.env.ROUTER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []), join(REPO, 'dist/main.js'), '--config', configPath, '--log-level', 'warn']);
      children.push(proc);
      await waitForHttp(`http://127.0.0.1:${adminPort}/health`, name);
      return { proc, controlPlane: { host: '127.0.0.1', port: grpcPort } };
    };
    const { proc: router, controlPlane } = await startRouterProcess('router', {});
    // The router tokenizes only for servers that report their caches: these name a KV event
    // socket nobody publishes on, so the tokenizing is measured and the index stays empty.
    const tokenizing = await startRouterProcess('router-with-tokenizer', { tokenizers: { m: TOKENIZER_DIR } }, (i) => ({ kvEvents: { endpoint: `ipc://${dir}/kv-${i}.sock` } }));
    const withRouter = await startEnvoy({ controlPlane, concurrency: 1 });
    const withTokenizer = await startEnvoy({ controlPlane: tokenizing.controlPlane, concurrency: 1 });
    // The limit: Envoy as a plain proxy, least request over the same backends, no body filters.
    const alone = await startEnvoy({
      controlPlane,
      concurrency: 1,
      edit: (b) => {
        const hcm = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
        hcm.http_filters = hcm.http_filters.filter((f: { name: string }) => f.name === 'envoy.filters.http.router');
        delete hcm.rds;
        hcm.route_config = { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'instant', timeout: '0s' } }] }] };
        b.static_resources.clusters.push({
          name: 'instant',
          type: 'STATIC',
          connect_timeout: '1s',
          lb_policy: 'LEAST_REQUEST',
          load_assignment: {
            cluster_name: 'instant',
            endpoints: [{ lb_endpoints: ports.map((port) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } })) }],
          },
        });
      },
    });
    // The floor of the mechanism: the same bootstrap, with ext_proc answered by a no-op processor.
    const noopPort = await freePort();
    const noop = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'bench/noop-processor.ts'), String(noopPort), 'm', `127.0.0.1:${ports[0]}`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(noop);
    await new Promise<void>((resolve, reject) => {
      noop.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('no-op processor on') && resolve());
      noop.once('exit', (code) => reject(new Error(`no-op processor exited (${code})`)));
    });
    const floor = await startEnvoy({
      controlPlane,
      concurrency: 1,
      edit: (b) => {
        const hcm = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
        hcm.http_filters.find((f: { name: string }) => f.name === 'envoy.filters.http.ext_proc').typed_config.grpc_service.envoy_grpc.cluster_name = 'noop_processor';
        const control = b.static_resources.clusters.find((c: { name: string }) => c.name === 'router_control_plane');
        const copy = JSON.parse(JSON.stringify(control));
        copy.name = 'noop_processor';
        copy.load_assignment.cluster_name = 'noop_processor';
        copy.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = noopPort;
        b.static_resources.clusters.push(copy);
      },
    });
    envoys.push(withRouter, withTokenizer, alone, floor);
    const direct = `http://127.0.0.1:${ports[0]}`;

    const rows: Row[] = [];
    const results: Record<string, Row> = {};
    const targets = [
      { name: 'direct', key: 'direct', url: direct },
      { name: 'envoy alone', key: 'envoy', url: alone.url },
      { name: 'envoy + no-op ext_proc', key: 'floor', url: floor.url },
      { name: 'envoy + router', key: 'router', url: withRouter.url },
      { name: 'envoy + router + tokenizer', key: 'tokenized', url: withTokenizer.url },
    ];
    const pidOf = (key: string) => (key === 'tokenized' ? tokenizing.proc.pid! : router.pid!);

    /** The configurations in turn, `rounds` times, at one rate and body. */
    const measure = async (label: string, kind: 'short' | '8k' | '100k', stream: boolean, rate: number, unique = false) => {
      let sentTotal = 0;
      const payload = unique ? () => body(kind, stream, sentTotal++) : body(kind, stream);
      const samples = new Map(targets.map((t) => [t.key, { ms: [] as number[], sent: 0, seconds: 0, cpu: 0 }]));
      // One unmeasured round per configuration at this rate and body first: the client's and
      // Envoy's connection pools grow to the concurrency this load needs, and the JIT warms,
      // so the figures are of the steady state, not of connection setup.
      for (const t of targets) await fixedRate(t.url, payload, rate, seconds / rounds);
      for (let round = 0; round < rounds; round++) {
        // Each round starts one configuration later: whatever a round leaves behind (a
        // process's garbage collection, connections closing) falls on each one in turn.
        for (const t of targets.map((_, i) => targets[(i + round) % targets.length]!)) {
          const acc = samples.get(t.key)!;
          const cpu0 = cpuMs(pidOf(t.key));
          const r = await fixedRate(t.url, payload, rate, seconds / rounds);
          acc.cpu += cpuMs(pidOf(t.key)) - cpu0;
          acc.ms.push(...r.ms);
          acc.sent += r.sent;
          acc.seconds += r.seconds;
        }
      }
      for (const t of targets) {
        const acc = samples.get(t.key)!;
        const ms = acc.ms.sort((a, b) => a - b);
        const row: Row = {
          config: t.name,
          body: kind,
          stream,
          rate,
          sent: acc.sent,
          ok: ms.length,
          achievedRate: round(ms.length / acc.seconds, 1),
          p50: round(pct(ms, 50)),
          p99: round(pct(ms, 99)),
          routerCpuMsPer1000: round((acc.cpu / acc.sent) * 1000, 1),
          routerRssMiB: rssMiB(pidOf(t.key)),
        };
        rows.push(row);
        results[`${t.key}-${label}`] = row;
        process.stderr.write(`${JSON.stringify(row)}\n`);
      }
    };

    const RATE = 500;
    await measure('plain', 'short', false, RATE);
    await measure('stream', 'short', true, RATE);
    // Large prompts cost bandwidth on every hop: measured at rates this machine sustains for all three.
    await measure('8k', '8k', false, 200);
    await measure('100k', '100k', false, 25);
    // Every prompt new: the tokenizer's cache cannot help, the whole text is encoded.
    await measure('8k-unique', '8k', false, 50, true);

    // Max sustained rate before p99 doubles (against its own p99 at the lowest rate).
    const ramp = async (url: string) => {
      const steps = quick ? [500, 1000, 2000] : [500, 1000, 1500, 2000, 3000, 4000];
      let base = NaN;
      let sustained = 0;
      for (const rate of steps) {
        const r = await fixedRate(url, body('short', false), rate, quick ? 1 : 3);
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
      noopExtProcOverEnvoyP50: round((results[`floor-${key}`]!.p50 as number) - (results[`envoy-${key}`]!.p50 as number)),
      p99RatioRouterToEnvoy: round((results[`router-${key}`]!.p99 as number) / (results[`envoy-${key}`]!.p99 as number), 2),
    });
    const summary = { short: added('plain'), shortStream: added('stream'), '8k': added('8k'), '100k': added('100k'), '8k-unique': added('8k-unique') };
    const tokenizerOverRouterP50 = (key: string) => round((results[`tokenized-${key}`]!.p50 as number) - (results[`router-${key}`]!.p50 as number));
    const tokenizer = { '8kRepeatedP50': tokenizerOverRouterP50('8k'), '8kUniqueP50': tokenizerOverRouterP50('8k-unique'), shortP50: tokenizerOverRouterP50('plain') };
    const decisions = {
      short: decisionsPerSecond(body('short', false), quick ? 300 : 1000),
      '8k': decisionsPerSecond(body('8k', false), quick ? 300 : 1000),
      '100k': decisionsPerSecond(body('100k', false), quick ? 300 : 1000),
      '8k tokenized, repeated': decisionsPerSecond(body('8k', false), quick ? 300 : 1000, { m: TOKENIZER_DIR }),
    };
    const heap = await heapAcrossRequests(quick ? 100_000 : 1_000_000);
    const report = {
      command: `npm run bench:overhead${quick ? ' -- --quick' : ''}`,
      date: new Date().toISOString(),
      quick,
      secondsPerRun: seconds,
      note: 'latencies in ms; added = configuration minus direct; envoy alone = plain proxy, least request, no body filters; no-op ext_proc = the repo bootstrap with a processor that reads nothing (the floor of body routing through ext_proc); Envoy runs one worker thread; 2 cores shared by everything',
      runs: rows,
      addedLatencyMs: summary,
      tokenizerAddedOverRouterMs: tokenizer,
      maxSustainedRatePerS: maxRate,
      schedulerDecisionsPerSecondInProcess: decisions,
      routerHeapAcrossRequestsInProcess: heap,
      elapsedS: round((Date.now() - started) / 1000, 1),
    };
    const path = resolve(REPO, out); // an absolute --out stays as given
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, JSON.stringify(report, null, 2) + '\n');
    console.log('added latency over direct (ms)   envoy p50  envoy p99  router p50  router p99  router-envoy p50  p99 router/envoy  no-op ext_proc-envoy p50');
    for (const [k, v] of Object.entries(summary)) {
      const cells = [v.envoyP50, v.envoyP99, v.routerP50, v.routerP99, v.routerOverEnvoyP50, v.p99RatioRouterToEnvoy, v.noopExtProcOverEnvoyP50];
      const widths = [9, 10, 11, 11, 17, 16, 25];
      console.log(`${k.padEnd(31)} ${cells.map((c, i) => String(c).padStart(widths[i]!)).join(' ')}`);
    }
    console.log(`tokenizer added over the router, p50 ms: ${JSON.stringify(tokenizer)}`);
    console.log(`max sustained req/s before p99 doubles: envoy alone ${maxRate.envoyAlone}, envoy + router ${maxRate.envoyRouter}`);
    console.log(`router CPU ms per 1000 requests (short, 500/s): ${results['router-plain']!.routerCpuMsPer1000}; RSS ${results['router-plain']!.routerRssMiB} MiB`);
    console.log(`scheduler decisions/s in-process (parse + schedule): ${JSON.stringify(decisions)}`);
    console.log(`router heap after GC across ${heap.at(-1)!.requests} requests in process (MiB): ${heap.map((h) => h.heapMiB).join(' ')}`);
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
