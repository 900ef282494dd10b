/**
 * Flow-control benchmark: tenants sharing a saturated fleet. A heavy tenant sends ten times
 * what a light one sends, a small VIP tenant sends at a higher priority, together at 150 % of
 * what the fleet completes per second (measured first, in the same run), open loop, for a
 * bounded time; then the light tenant alone, on an idle fleet, for its baseline. Against
 * Envoy's least request and the router with flow control off, each on fresh processes.
 *
 *   npm run bench:flow [-- --quick] [--out FILE.json] [--seconds 20] [--load 1.5]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { closeClient, streamChat, type RequestResult } from './client.js';
import { REPO } from '../src/launcher/envoy.js';
import { startRoutingLayer, startSimFleet, type Strategy } from './stack.js';
import { prng, text, type BenchRequest } from './workloads.js';

const MODEL = 'llama-8b';
const SERVERS = 4;
/** Slower than real time, so that the load generator, Envoy and the router keep up on two cores. */
const TIME_SCALE = 2;
const FLOW = { enabled: true, maxQueued: 2048, maxWaitMs: 30_000 };

const CONFIGS: Strategy[] = [
  { name: 'envoy-least-request', label: 'Envoy least request', envoyOnly: 'least_request' },
  { name: 'ours', label: 'router, flow control off', scheduler: {} },
  { name: 'ours-flow', label: 'router, flow control on', scheduler: {}, flowControl: FLOW },
];

interface Tenant {
  name: string;
  /** Share of the arrival rate. */
  share: number;
  headers: Record<string, string>;
}

const TENANTS: Tenant[] = [
  { name: 'heavy', share: 10 / 11.5, headers: { 'x-tenant-id': 'heavy' } },
  { name: 'light', share: 1 / 11.5, headers: { 'x-tenant-id': 'light' } },
  { name: 'vip', share: 0.5 / 11.5, headers: { 'x-tenant-id': 'vip', 'x-request-priority': '5' } },
];

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const pct = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

function requestOf(random: () => number): BenchRequest {
  return { model: MODEL, messages: [{ role: 'user', content: text(random, 200) }], maxTokens: 48 };
}

/** Closed loop with plenty of clients for `seconds`: what the fleet completes per second when never idle. */
async function capacity(url: string, seconds: number): Promise<number> {
  const random = prng(11);
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const worker = async () => {
    while (Date.now() < deadline) if ((await streamChat(url, requestOf(random))).ok) done++;
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: SERVERS * 8 * 3 }, worker));
  return done / ((performance.now() - start) / 1000);
}

/** Open loop: Poisson arrivals at `rate` per second for `seconds`, each tenant by its share; waits for every answer. */
async function openLoop(url: string, rate: number, seconds: number, tenants: readonly Tenant[], seed: number) {
  const random = prng(seed);
  const total = tenants.reduce((a, t) => a + t.share, 0);
  const pending: Array<Promise<{ tenant: string; result: RequestResult }>> = [];
  const start = performance.now();
  let at = 0;
  for (;;) {
    at += -Math.log(1 - random()) / rate;
    if (at >= seconds) break;
    const wait = start + at * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    let pick = random() * total;
    const tenant = tenants.find((t) => (pick -= t.share) < 0) ?? tenants[tenants.length - 1]!;
    const request = requestOf(random);
    // Bounded: nothing may hang longer than the wait limit and a full answer.
    pending.push(streamChat(url, request, FLOW.maxWaitMs + 60_000, tenant.headers).then((result) => ({ tenant: tenant.name, result })));
  }
  const results = await Promise.all(pending);
  return { results, elapsedS: (performance.now() - start) / 1000 };
}

/** The requests of the tenants named. */
function summarize(results: Array<{ tenant: string; result: RequestResult }>, ...tenants: string[]) {
  const mine = results.filter((r) => tenants.includes(r.tenant)).map((r) => r.result);
  const ok = mine.filter((r) => r.ok);
  const shed = mine.filter((r) => r.status === 429);
  const ttft = ok.map((r) => r.ttftMs).sort((a, b) => a - b);
  return {
    sent: mine.length,
    ok: ok.length,
    shed: shed.length,
    shedWithRetryAfter: shed.filter((r) => r.retryAfter !== undefined).length,
    failed: mine.length - ok.length - shed.length,
    ttftP50: round(pct(ttft, 50)),
    ttftP90: round(pct(ttft, 90)),
    ttftP99: round(pct(ttft, 99)),
  };
}

async function main() {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' }, seconds: { type: 'string' }, load: { type: 'string' } } });
  const quick = values.quick ?? false;
  const seconds = Number(values.seconds ?? (quick ? 6 : 20));
  const load = Number(values.load ?? 1.5);
  const out = resolve(REPO, values.out ?? (quick ? '.tmp/bench-flow-quick.json' : 'bench/results/flow.json'));
  const started = Date.now();
  const rows: Array<Record<string, unknown>> = [];
  let fleetRate: number | undefined;
  for (const config of CONFIGS) {
    const sims = await startSimFleet([{ model: MODEL, servers: SERVERS }], TIME_SCALE);
    try {
      const routing = await startRoutingLayer(sims.sims, config);
      try {
        // The fleet's rate, measured once through the router, sets the load for every config.
        fleetRate ??= await capacity(routing.url, quick ? 4 : 8);
        const idle = await openLoop(routing.url, (fleetRate * load * TENANTS[1]!.share) / 1, quick ? 4 : 10, [TENANTS[1]!], 5);
        const busy = await openLoop(routing.url, fleetRate * load, seconds, TENANTS, 7);
        const row = {
          config: config.name,
          label: config.label,
          // Completed per second from the first arrival to the last answer: what holding slots back costs.
          loadedRatePerS: round(busy.results.filter((r) => r.result.ok).length / busy.elapsedS, 2),
          lightIdle: summarize(idle.results, 'light'),
          ...Object.fromEntries(TENANTS.map((t) => [t.name, summarize(busy.results, t.name)])),
          // The band below the VIP's: every request without a priority.
          priority0: summarize(busy.results, ...TENANTS.filter((t) => !t.headers['x-request-priority']).map((t) => t.name)),
        };
        rows.push(row);
        process.stderr.write(`${JSON.stringify(row)}\n`);
      } finally {
        await routing.stop();
      }
    } finally {
      await sims.stop();
    }
  }
  closeClient();
  const verdicts = rows.map((r: any) => {
    const ratio = r.light.ttftP50 / r.lightIdle.ttftP50;
    const shed = TENANTS.reduce((a, t) => a + r[t.name].shed, 0);
    const withRetry = TENANTS.reduce((a, t) => a + r[t.name].shedWithRetryAfter, 0);
    const failed = TENANTS.reduce((a, t) => a + r[t.name].failed, 0);
    // High priority ahead of low: the VIP band against the band below it as a whole (the light
    // tenant, let through at once by fairness, may start as soon as the VIP does).
    const met = ratio <= 1.5 && r.heavy.ttftP50 >= r.light.ttftP50 && r.vip.ttftP50 <= r.priority0.ttftP50 && failed === 0 && withRetry === shed;
    return (
      `${r.config}: light tenant TTFT p50 ${r.light.ttftP50} ms loaded vs ${r.lightIdle.ttftP50} ms idle = ${ratio.toFixed(2)}x (target <= 1.5x); ` +
      `completed ${r.loadedRatePerS}/s; heavy ${r.heavy.ttftP50} ms, vip (priority 5) ${r.vip.ttftP50} ms against priority 0's ${r.priority0.ttftP50} ms; shed ${shed} (${withRetry} with retry-after), failed or hung ${failed}: ${met ? 'met' : 'NOT met'}`
    );
  });
  for (const v of verdicts) console.log(v);
  const report = { command: `npm run bench:flow${quick ? ' -- --quick' : ''}`, date: new Date().toISOString(), servers: SERVERS, timeScale: TIME_SCALE, load, seconds, fleetRatePerS: round(fleetRate ?? 0, 2), tenants: TENANTS, flowControl: FLOW, results: rows, verdicts, elapsedS: round((Date.now() - started) / 1000) };
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(report, null, 2) + '\n');
  console.log(`wrote ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
