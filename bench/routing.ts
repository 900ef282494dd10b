/**
 * Routing-quality benchmark: every workload against every strategy, in one run, on the real
 * stack (Envoy + router + simulated vLLM servers, loopback only).
 *
 *   npm run bench:routing [-- --quick] [--out FILE.json] [--time-scale 1] [--only w1,w2] [--strategies s1,s2]
 *                         [--scheduler '{"cost":{"queuedRequestTokens":1024}}']   (config for "ours")
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { groupedBarsSvg } from './chart.js';
import { closeClient, streamChat, type RequestResult } from './client.js';
import { BENCH_ENGINE, STRATEGIES, startBenchStack, type RunningStack, type Strategy } from './stack.js';
import { upperBoundHits } from './upper-bound.js';
import { allWorkloads, type BenchRequest, type Workload } from './workloads.js';

interface RunResult {
  workload: string;
  strategy: string;
  requests: number;
  completed: number;
  errors: number;
  durationS: number;
  requestsPerS: number;
  tokensPerS: number;
  ttftMs: { p50: number; p90: number; p99: number };
  e2eMs: { p50: number; p90: number; p99: number };
  hitRate: number;
  /** max/mean requests served per server, worst model group. */
  imbalance: number;
  /** Per simulated server: requests served, its own hit rate, preemptions. */
  servers: Array<{ model: string; served: number; hitRate: number; preemptions: number }>;
  firstErrors: string[];
}

const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(s, 50)), p90: round(percentile(s, 90)), p99: round(percentile(s, 99)) };
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

interface SimStats {
  numPreemptions: number;
  requestsTotal: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
}

async function simStats(stack: RunningStack): Promise<SimStats[]> {
  return Promise.all(stack.sims.map((s) => fetch(`${s.url}/_sim/stats`).then((r) => r.json() as Promise<SimStats>)));
}

/** Closed loop: `concurrency` workers take sessions in order and play their turns. */
async function drive(url: string, workload: Workload, deadlineMs: number) {
  const results: RequestResult[] = [];
  const sent: Array<{ request: BenchRequest; reply: string }> = [];
  let next = 0;
  const worker = async () => {
    while (next < workload.sessions.length && Date.now() < deadlineMs) {
      const session = workload.sessions[next++]!;
      const replies: string[] = [];
      for (let t = 0; t < session.turns && Date.now() < deadlineMs; t++) {
        const request = session.turn(t, replies);
        const result = await streamChat(url, request);
        results.push(result);
        sent.push({ request, reply: result.text });
        replies.push(result.text);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: workload.concurrency }, worker));
  return { results, sent, durationS: (performance.now() - started) / 1000 };
}

async function runOne(workload: Workload, strategy: Strategy, timeScale: number, budgetMs: number) {
  const stack = await startBenchStack(workload.fleet, strategy, timeScale);
  try {
    const { results, sent, durationS } = await drive(stack.url, workload, Date.now() + budgetMs);
    const stats = await simStats(stack);
    const ok = results.filter((r) => r.ok);
    const queries = stats.reduce((a, s) => a + s.prefixCacheQueries, 0);
    const hits = stats.reduce((a, s) => a + s.prefixCacheHits, 0);
    const served = stats.map((s) => s.requestsTotal);
    const imbalance = Math.max(
      ...workload.fleet.map(({ model }) => {
        const group = stack.sims.map((s, i) => (s.model === model ? served[i]! : -1)).filter((n) => n >= 0);
        const mean = group.reduce((a, b) => a + b, 0) / group.length;
        return mean > 0 ? Math.max(...group) / mean : 1;
      }),
    );
    const result: RunResult = {
      workload: workload.name,
      strategy: strategy.name,
      requests: results.length,
      completed: ok.length,
      errors: results.length - ok.length,
      durationS: round(durationS, 2),
      requestsPerS: round(ok.length / durationS),
      tokensPerS: round(ok.reduce((a, r) => a + r.completionTokens, 0) / durationS),
      ttftMs: summary(ok.map((r) => r.ttftMs)),
      e2eMs: summary(ok.map((r) => r.e2eMs)),
      hitRate: round(queries > 0 ? hits / queries : 0, 4),
      imbalance: round(imbalance, 2),
      servers: stats.map((s, i) => ({
        model: stack.sims[i]!.model,
        served: s.requestsTotal,
        hitRate: round(s.prefixCacheQueries > 0 ? s.prefixCacheHits / s.prefixCacheQueries : 0, 4),
        preemptions: s.numPreemptions,
      })),
      firstErrors: results.filter((r) => !r.ok).slice(0, 3).map((r) => r.error ?? `status ${r.status}`),
    };
    return { result, sent };
  } finally {
    await stack.stop();
  }
}

function table(rows: RunResult[], bounds: Map<string, number>): string {
  const head = ['workload', 'strategy', 'ok/sent', 'TTFT p50', 'p90', 'p99', 'e2e p50', 'req/s', 'tok/s', 'hit rate', 'bound', 'imbalance'];
  const lines = rows.map((r) => [
    r.workload,
    r.strategy,
    `${r.completed}/${r.requests}`,
    r.ttftMs.p50.toFixed(1),
    r.ttftMs.p90.toFixed(1),
    r.ttftMs.p99.toFixed(1),
    r.e2eMs.p50.toFixed(1),
    r.requestsPerS.toFixed(1),
    r.tokensPerS.toFixed(0),
    (r.hitRate * 100).toFixed(1) + '%',
    ((bounds.get(r.workload) ?? 0) * 100).toFixed(1) + '%',
    r.imbalance.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), ...lines.map(fmt)].join('\n');
}

function verdicts(rows: RunResult[], bounds: Map<string, number>, quick: boolean): string[] {
  const get = (w: string, s: string) => rows.find((r) => r.workload === w && r.strategy === s);
  const out: string[] = quick
    ? ['quick mode: a few dozen requests per run, dominated by cold caches; the targets are judged on the full run']
    : [];
  for (const w of ['shared-system-prompts', 'long-document-qa', 'multi-turn-chat']) {
    const ours = get(w, 'ours');
    const rr = get(w, 'envoy-round-robin');
    const lr = get(w, 'envoy-least-request');
    const bound = bounds.get(w);
    if (!ours || !rr || !lr || bound === undefined) continue;
    const ratio = ours.hitRate / bound;
    out.push(`${w}: hit rate ${(ours.hitRate * 100).toFixed(1)}% = ${(ratio * 100).toFixed(0)}% of the upper bound (target >= 90%): ${ratio >= 0.9 ? 'met' : 'NOT met'}`);
    const ttft = ours.ttftMs.p50 / rr.ttftMs.p50;
    out.push(`${w}: TTFT p50 ${ours.ttftMs.p50} ms vs round robin ${rr.ttftMs.p50} ms = ${ttft.toFixed(2)}x (target <= 0.33x): ${ttft <= 1 / 3 ? 'met' : 'NOT met'}`);
    const tput = ours.requestsPerS / lr.requestsPerS;
    out.push(`${w}: throughput ${ours.requestsPerS} req/s vs least request ${lr.requestsPerS} = ${tput.toFixed(2)}x (target >= 1.0x): ${tput >= 1 ? 'met' : 'NOT met'}`);
  }
  const ours = get('random-prompts', 'ours');
  const lr = get('random-prompts', 'envoy-least-request');
  if (ours && lr) {
    const ttft = ours.ttftMs.p50 / lr.ttftMs.p50;
    const tput = ours.requestsPerS / lr.requestsPerS;
    out.push(
      `random-prompts: TTFT p50 ${ttft.toFixed(2)}x and throughput ${tput.toFixed(2)}x least request (target within 5%): ${ttft <= 1.05 && tput >= 0.95 ? 'met' : 'NOT met'}`,
    );
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'time-scale': { type: 'string', default: '1' },
      seed: { type: 'string', default: '42' },
      only: { type: 'string' },
      strategies: { type: 'string' },
      // Scheduler section (JSON) for the "ours" strategy, to evaluate another configuration.
      scheduler: { type: 'string' },
    },
  });
  const quick = values.quick!;
  const timeScale = Number(values['time-scale']);
  const out = values.out ?? `bench/results/routing${quick ? '-quick' : ''}.json`;
  let workloads = allWorkloads(Number(values.seed), quick);
  if (values.only) workloads = workloads.filter((w) => values.only!.split(',').includes(w.name));
  let strategies = values.strategies ? STRATEGIES.filter((s) => values.strategies!.split(',').includes(s.name)) : STRATEGIES;
  if (values.scheduler) {
    const scheduler = JSON.parse(values.scheduler) as Record<string, unknown>;
    strategies = strategies.map((s) => (s.name === 'ours' ? { ...s, label: `ours with ${values.scheduler}`, scheduler } : s));
  }
  if (strategies.length === 0) throw new Error(`--strategies: none of ${STRATEGIES.map((s) => s.name).join(', ')}`);
  const budgetMs = quick ? 8_000 : 60_000;
  const started = Date.now();

  const rows: RunResult[] = [];
  const bounds = new Map<string, number>();
  for (const workload of workloads) {
    for (const strategy of strategies) {
      const { result, sent } = await runOne(workload, strategy, timeScale, budgetMs);
      rows.push(result);
      process.stderr.write(
        `${workload.name} / ${strategy.name}: ${result.completed}/${result.requests} ok, TTFT p50 ${result.ttftMs.p50} ms, ${result.requestsPerS} req/s, hit ${(result.hitRate * 100).toFixed(1)}%\n`,
      );
      if (!bounds.has(workload.name)) {
        // Per model: one server with all of that model's servers' blocks; tokens summed over models.
        let hits = 0;
        let queries = 0;
        for (const { model, servers } of workload.fleet) {
          const mine = sent.filter((s) => s.request.model === model);
          const bound = upperBoundHits(mine, BENCH_ENGINE.numGpuBlocks * servers, BENCH_ENGINE.blockSize);
          hits += bound.hits;
          queries += bound.queries;
        }
        bounds.set(workload.name, round(queries > 0 ? hits / queries : 0, 4));
      }
    }
  }
  closeClient();

  const report = {
    command: `npm run bench:routing${quick ? ' -- --quick' : ''}`,
    date: new Date().toISOString(),
    quick,
    timeScale,
    engine: BENCH_ENGINE,
    strategies: strategies.map((s) => ({ name: s.name, label: s.label })),
    workloads: workloads.map((w) => ({ name: w.name, description: w.description, fleet: w.fleet, concurrency: w.concurrency, upperBoundHitRate: bounds.get(w.name) })),
    results: rows,
    verdicts: verdicts(rows, bounds, quick),
    elapsedS: round((Date.now() - started) / 1000),
  };
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(report, null, 2) + '\n');
  const names = workloads.map((w) => w.name);
  const strategyNames = strategies.map((s) => s.name);
  const pick = (f: (r: RunResult) => number) => names.map((w) => strategyNames.map((s) => f(rows.find((r) => r.workload === w && r.strategy === s)!)));
  const svg = groupedBarsSvg(names, strategyNames, [
    { title: 'Time to first token, p50', unit: 'ms, lower is better', values: pick((r) => r.ttftMs.p50) },
    { title: 'Prefix-cache hit rate', unit: 'share of prompt tokens, higher is better', values: pick((r) => r.hitRate), marks: names.map((w) => bounds.get(w)) },
    { title: 'Completed requests per second', unit: 'higher is better', values: pick((r) => r.requestsPerS) },
  ]);
  await writeFile(out.replace(/\.json$/, '.svg'), svg);
  console.log(table(rows, bounds));
  console.log('\n' + report.verdicts.join('\n'));
  console.log(`\nwrote ${out} and ${out.replace(/\.json$/, '.svg')} in ${report.elapsedS} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
