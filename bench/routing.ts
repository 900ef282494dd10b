/**
 * Routing-quality benchmark: every workload against every strategy, in one run, on the real
 * stack (Envoy + router + simulated vLLM servers, loopback only).
 *
 *   npm run bench:routing [-- --quick] [--out FILE.json] [--time-scale 1] [--only w1,w2] [--strategies s1,s2]
 *                         [--scheduler '{"cost":{"evictionWeight":1}}']   (config for "ours")
 *                         [--rounds 1]   (runs of every strategy, taking turns; figures pool them)
 *                         [--fleets uniform,mixed-speed,mixed-slots,small-cache]   (simulated fleets, bench/stack.ts SIM_FLEETS)
 *                         [--replicas 1,2,3]   (each router strategy also with 2 and 3 router replicas behind the one Envoy)
 *                         [--tokenizer DIR]   (the simulated servers tokenize with this model directory; default: the
 *                                              simulator's stand-in, or test/fixtures/tiny-tokenizer when a precise
 *                                              strategy runs, for every strategy of the run alike)
 *   --strategies ...,ours-flow   (the router with flow control on; not in the default set)
 *   On real vLLM a precise strategy makes every server publish its KV events (whatever the strategy) and gives
 *   the router the model's own tokenizer.
 *   npm run bench:routing -- --backend vllm [--vllm-servers 2]   (real vLLM, CPU build: npm run setup:vllm)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { groupedBarsSvg } from './chart.js';
import { closeClient, drive, type RequestResult } from './client.js';
import { countersSince, readCounters, type ServerCounters } from './server-counters.js';
import { REPO } from '../src/launcher/envoy.js';
import { modelDirectoryEncoder, STAND_IN_ENCODER, type PromptEncoder } from '../src/simulator/prompt-encoder.js';
import { BENCH_ENGINE, SIM_FLEETS, STRATEGIES, startRoutingLayer, startSimFleet, type BenchServer, type SimFleetOptions, type SimServerShape, type Strategy } from './stack.js';
import { upperBoundHits } from './upper-bound.js';
import { startVllmFleet, type VllmFleet } from './vllm-fleet.js';
import { allWorkloads, prng, text, type BenchRequest, type Workload } from './workloads.js';

interface RunResult {
  /** Which fleet (SIM_FLEETS, or real vLLM). */
  fleet: string;
  workload: string;
  strategy: string;
  /** Runs pooled into this row. */
  rounds: number;
  requests: number;
  completed: number;
  errors: number;
  durationS: number;
  requestsPerS: number;
  /** Each round's own rate, for ratios between strategies that ran side by side. */
  perRoundRequestsPerS: number[];
  tokensPerS: number;
  ttftMs: { p50: number; p90: number; p99: number };
  e2eMs: { p50: number; p90: number; p99: number };
  hitRate: number;
  /** Prompt tokens per request, as the servers counted them (their tokenizer). */
  meanPromptTokens: number;
  /** max/mean requests served per server, worst model group. */
  imbalance: number;
  /** LoRA adapters loaded into a batch slot per second, over the fleet (null where no adapters were asked for). */
  adapterLoadsPerS: number | null;
  /** Per simulated server: requests served, its own hit rate, preemptions. */
  servers: Array<{ model: string; served: number; hitRate: number; preemptions: number }>;
  /**
   * The router's time-to-first-token prediction against each server's own measurement: mean
   * absolute error relative to the measured mean, over windows of 40 requests, averaged over the
   * servers (null where the router predicted nothing: Envoy-only strategies).
   */
  ttftPredictionError: number | null;
  firstErrors: string[];
}

const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(s, 50)), p90: round(percentile(s, 90)), p99: round(percentile(s, 99)) };
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** Where the model servers come from: fresh simulators for every run, or real vLLM started once. */
type Backend = { kind: 'sim'; timeScale: number; shapes: readonly SimServerShape[]; options: SimFleetOptions } | { kind: 'vllm'; fleet: VllmFleet };

interface Run {
  results: RequestResult[];
  sent: Array<{ request: BenchRequest; reply: string }>;
  durationS: number;
  servers: BenchServer[];
  counters: ServerCounters[];
  /** Per server, the router's relative TTFT prediction error, where it made predictions. */
  ttftErrors: number[];
}

/**
 * The router compares predictions with what the servers measured when it next reads their
 * metrics: read its account after two scrapes (the default 200 ms interval) have seen the last
 * requests, or a short run's last window of 40 is left out.
 */
const SCRAPES_SETTLE_MS = 500;

/** The router's own account of how well it predicted each backend's time to first token. */
async function predictionErrors(routerAdmin: string): Promise<number[]> {
  await new Promise((resolve) => setTimeout(resolve, SCRAPES_SETTLE_MS));
  const stats = (await fetch(`${routerAdmin}/stats`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.json())) as {
    backends: Array<{ ttft: { error: number | null } }>;
  };
  return stats.backends.map((b) => b.ttft.error).filter((e): e is number => e !== null);
}

async function runOne(workload: Workload, strategy: Strategy, backend: Backend, budgetMs: number): Promise<Run> {
  const simOptions = backend.kind === 'sim' ? { ...backend.options, ...(workload.lora ? { lora: workload.lora } : {}) } : undefined;
  const sims = backend.kind === 'sim' ? await startSimFleet(workload.fleet, backend.timeScale, backend.shapes, simOptions) : undefined;
  try {
    let servers: BenchServer[];
    let routing;
    if (backend.kind === 'vllm') {
      // Real vLLM with the router's default config: nothing about the servers is declared.
      servers = backend.fleet.servers;
      await backend.fleet.resetCaches();
      // vLLM servers run in sessions of their own (each a process group): so do Envoy and the routers.
      routing = await startRoutingLayer(servers, strategy, { ownSessions: true });
    } else {
      servers = sims!.sims;
      routing = await startRoutingLayer(servers, strategy);
    }
    try {
      const before = await Promise.all(servers.map((s) => readCounters(s.url)));
      const { results, sent, durationS } = await drive(routing.url, workload, Date.now() + budgetMs, servers.map((s) => s.url));
      const after = await Promise.all(servers.map((s) => readCounters(s.url)));
      const ttftErrors = strategy.envoyOnly ? [] : await predictionErrors(routing.routerAdmin);
      return { results, sent, durationS, servers, counters: after.map((a, i) => countersSince(before[i]!, a)), ttftErrors };
    } finally {
      await routing.stop();
    }
  } finally {
    await sims?.stop();
  }
}

const completedPerS = (run: Run) => run.results.filter((x) => x.ok).length / run.durationS;

/** One row of figures for a (workload, strategy), pooling its runs (rounds). */
function summarize(fleet: string, workload: Workload, strategy: Strategy, runs: Run[]): RunResult {
  const results = runs.flatMap((r) => r.results);
  const ok = results.filter((r) => r.ok);
  const durationS = runs.reduce((a, r) => a + r.durationS, 0);
  const servers = runs[0]!.servers.map((s, i) => {
    const c = runs.map((r) => r.counters[i]!);
    const sum = (k: keyof ServerCounters) => c.reduce((a, x) => a + x[k], 0);
    return { model: s.model, served: sum('served'), queries: sum('prefixQueries'), hits: sum('prefixHits'), preemptions: sum('preemptions'), promptTokens: sum('promptTokens'), adapterLoads: sum('adapterLoads') };
  });
  const queries = servers.reduce((a, s) => a + s.queries, 0);
  const hits = servers.reduce((a, s) => a + s.hits, 0);
  const imbalance = Math.max(
    ...workload.fleet.map(({ model }) => {
      const group = servers.filter((s) => s.model === model).map((s) => s.served);
      const mean = group.reduce((a, b) => a + b, 0) / group.length;
      return mean > 0 ? Math.max(...group) / mean : 1;
    }),
  );
  const ttftErrors = runs.flatMap((r) => r.ttftErrors);
  return {
    fleet,
    workload: workload.name,
    strategy: strategy.name,
    rounds: runs.length,
    requests: results.length,
    completed: ok.length,
    errors: results.length - ok.length,
    durationS: round(durationS, 2),
    requestsPerS: round(ok.length / durationS, 2),
    perRoundRequestsPerS: runs.map((r) => round(completedPerS(r), 2)),
    tokensPerS: round(ok.reduce((a, r) => a + r.completionTokens, 0) / durationS),
    ttftMs: summary(ok.map((r) => r.ttftMs)),
    e2eMs: summary(ok.map((r) => r.e2eMs)),
    hitRate: round(queries > 0 ? hits / queries : 0, 4),
    meanPromptTokens: Math.round(servers.reduce((a, s) => a + s.promptTokens, 0) / Math.max(1, servers.reduce((a, s) => a + s.served, 0))),
    imbalance: round(imbalance, 2),
    adapterLoadsPerS: workload.lora ? round(servers.reduce((a, s) => a + s.adapterLoads, 0) / durationS, 2) : null,
    servers: servers.map((s) => ({ model: s.model, served: s.served, hitRate: round(s.queries > 0 ? s.hits / s.queries : 0, 4), preemptions: s.preemptions })),
    ttftPredictionError: ttftErrors.length > 0 ? round(ttftErrors.reduce((a, e) => a + e, 0) / ttftErrors.length, 3) : null,
    firstErrors: results.filter((r) => !r.ok).slice(0, 3).map((r) => r.error ?? `status ${r.status}`),
  };
}

const boundKey = (fleet: string, workload: string) => `${fleet}/${workload}`;

function table(rows: RunResult[], bounds: Map<string, number>): string {
  const head = ['fleet', 'workload', 'strategy', 'ok/sent', 'TTFT p50', 'p90', 'p99', 'e2e p50', 'req/s', 'tok/s', 'hit rate', 'bound', 'imbalance', 'TTFT err', 'loads/s'];
  const lines = rows.map((r) => {
    const bound = bounds.get(boundKey(r.fleet, r.workload));
    return [
      r.fleet,
      r.workload,
      r.strategy,
      `${r.completed}/${r.requests}`,
      r.ttftMs.p50.toFixed(1),
      r.ttftMs.p90.toFixed(1),
      r.ttftMs.p99.toFixed(1),
      r.e2eMs.p50.toFixed(1),
      r.requestsPerS.toFixed(2),
      r.tokensPerS.toFixed(0),
      (r.hitRate * 100).toFixed(1) + '%',
      bound !== undefined ? (bound * 100).toFixed(1) + '%' : '-',
      r.imbalance.toFixed(2),
      r.ttftPredictionError === null ? '-' : (r.ttftPredictionError * 100).toFixed(0) + '%',
      r.adapterLoadsPerS === null ? '-' : r.adapterLoadsPerS.toFixed(2),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), ...lines.map(fmt)].join('\n');
}

/** Workloads whose prompts share long prefixes: there the router must beat least request clearly. */
const SHARED_PREFIX = new Set(['shared-system-prompts', 'long-document-qa']);

/**
 * The targets against Envoy's least request, on every fleet and workload: its throughput at
 * least (1.25x where prompts share prefixes), TTFT p50 no worse, and, for the router, a TTFT
 * prediction within 25 % of what the servers measured.
 */
function leastRequestVerdicts(rows: RunResult[]): string[] {
  const out: string[] = [];
  for (const { fleet, workload: w } of rows.filter((r) => r.strategy === 'ours')) {
    const get = (s: string) => rows.find((r) => r.fleet === fleet && r.workload === w && r.strategy === s);
    const ours = get('ours')!;
    const lr = get('envoy-least-request');
    if (!lr) continue;
    const target = SHARED_PREFIX.has(w) ? 1.25 : 1;
    const tput = ours.requestsPerS / lr.requestsPerS;
    const ttft = ours.ttftMs.p50 / lr.ttftMs.p50;
    const error = ours.ttftPredictionError;
    const met = tput >= target && ttft <= 1 && error !== null && error < 0.25;
    // A host's speed drifts over minutes: the ratio within each round, where the two ran one
    // after the other, shows how much of the pooled ratio is noise.
    const paired = ours.perRoundRequestsPerS.map((x, i) => x / lr.perRoundRequestsPerS[i]!);
    const geomean = Math.exp(paired.reduce((a, x) => a + Math.log(x), 0) / paired.length);
    out.push(
      `${fleet} ${w}: throughput ${ours.requestsPerS} vs least request ${lr.requestsPerS} req/s = ${tput.toFixed(2)}x (target >= ${target}x` +
        (paired.length > 1 ? `; per round ${paired.map((x) => x.toFixed(2)).join(', ')}, geometric mean ${geomean.toFixed(2)}x` : '') +
        `), TTFT p50 ${ours.ttftMs.p50} vs ${lr.ttftMs.p50} ms = ${ttft.toFixed(2)}x (target <= 1x), ` +
        `TTFT prediction error ${error === null ? 'none' : (error * 100).toFixed(0) + '%'} (target < 25%): ${met ? 'met' : 'NOT met'}`,
    );
  }
  return out;
}

/**
 * Where adapters were asked for: fewer adapter loads and a lower TTFT p50 than least request,
 * and throughput not below it; round robin alongside for scale.
 */
function adapterVerdicts(rows: RunResult[]): string[] {
  const out: string[] = [];
  for (const ours of rows.filter((r) => r.adapterLoadsPerS !== null && !r.strategy.startsWith('envoy-'))) {
    const get = (s: string) => rows.find((r) => r.fleet === ours.fleet && r.workload === ours.workload && r.strategy === s);
    const lr = get('envoy-least-request');
    const rr = get('envoy-round-robin');
    if (!lr || lr.adapterLoadsPerS === null) continue;
    const met = ours.adapterLoadsPerS! < lr.adapterLoadsPerS && ours.ttftMs.p50 < lr.ttftMs.p50 && ours.requestsPerS >= lr.requestsPerS;
    out.push(
      `${ours.fleet} ${ours.workload}: ${ours.strategy} adapter loads ${ours.adapterLoadsPerS}/s vs least request ${lr.adapterLoadsPerS}/s` +
        (rr ? ` (round robin ${rr.adapterLoadsPerS}/s)` : '') +
        `, TTFT p50 ${ours.ttftMs.p50} vs ${lr.ttftMs.p50} ms, throughput ${ours.requestsPerS} vs ${lr.requestsPerS} req/s: ${met ? 'met' : 'NOT met'}`,
    );
  }
  return out;
}

/** Several router replicas against one: at least 97 % of its hit rate and of its throughput. */
function replicaVerdicts(rows: RunResult[]): string[] {
  const out: string[] = [];
  for (const many of rows) {
    const [, base, count] = /^(.*)-x(\d)$/.exec(many.strategy) ?? [];
    const one = rows.find((r) => r.fleet === many.fleet && r.workload === many.workload && r.strategy === base);
    if (!one) continue;
    const hits = one.hitRate > 0 ? many.hitRate / one.hitRate : 1;
    const tput = many.requestsPerS / one.requestsPerS;
    const met = hits >= 0.97 && tput >= 0.97;
    out.push(
      `${many.fleet} ${many.workload}: ${base}, ${count} replicas against one: hit rate ${(many.hitRate * 100).toFixed(1)}% vs ${(one.hitRate * 100).toFixed(1)}% = ${(hits * 100).toFixed(0)}%, ` +
        `throughput ${many.requestsPerS} vs ${one.requestsPerS} req/s = ${(tput * 100).toFixed(0)}% (targets >= 97%): ${met ? 'met' : 'NOT met'}`,
    );
  }
  return out;
}

/** Precise (events + tokenizer) against approximate, with as many replicas: at least as good, better under cache pressure. */
function preciseVerdicts(rows: RunResult[]): string[] {
  const out: string[] = [];
  for (const precise of rows.filter((r) => r.strategy.startsWith('ours-precise'))) {
    const approximate = rows.find((r) => r.fleet === precise.fleet && r.workload === precise.workload && r.strategy === precise.strategy.replace('ours-precise', 'ours'));
    if (!approximate) continue;
    const hits = precise.hitRate - approximate.hitRate;
    const tput = precise.requestsPerS / approximate.requestsPerS;
    const pressure = precise.workload === 'cache-pressure';
    const met = pressure ? hits > 0 && tput >= 1 : hits >= -0.01 && tput >= 0.97;
    out.push(
      `${precise.fleet} ${precise.workload}: ${precise.strategy} against ${approximate.strategy}: hit rate ${(precise.hitRate * 100).toFixed(1)}% vs ${(approximate.hitRate * 100).toFixed(1)}%, ` +
        `throughput ${precise.requestsPerS} vs ${approximate.requestsPerS} req/s = ${tput.toFixed(2)}x (target: ${pressure ? 'better' : 'at least as good'}): ${met ? 'met' : 'NOT met'}`,
    );
  }
  return out;
}

/** On the uniform simulated fleet: hit rate against the upper bound, and TTFT against round robin. */
function cacheVerdicts(rows: RunResult[], bounds: Map<string, number>): string[] {
  const out: string[] = [];
  const get = (w: string, s: string) => rows.find((r) => r.fleet === 'uniform' && r.workload === w && r.strategy === s);
  for (const w of ['shared-system-prompts', 'long-document-qa', 'multi-turn-chat']) {
    const ours = get(w, 'ours');
    const rr = get(w, 'envoy-round-robin');
    const bound = bounds.get(boundKey('uniform', w));
    if (!ours || !rr || bound === undefined) continue;
    const ratio = ours.hitRate / bound;
    out.push(`uniform ${w}: hit rate ${(ours.hitRate * 100).toFixed(1)}% = ${(ratio * 100).toFixed(0)}% of the upper bound (target >= 90%): ${ratio >= 0.9 ? 'met' : 'NOT met'}`);
    const ttft = ours.ttftMs.p50 / rr.ttftMs.p50;
    out.push(`uniform ${w}: TTFT p50 ${ours.ttftMs.p50} ms vs round robin ${rr.ttftMs.p50} ms = ${ttft.toFixed(2)}x (target <= 0.33x): ${ttft <= 1 / 3 ? 'met' : 'NOT met'}`);
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
      backend: { type: 'string', default: 'sim' },
      'vllm-servers': { type: 'string', default: '2' },
      rounds: { type: 'string' },
      fleets: { type: 'string' },
      replicas: { type: 'string' },
      tokenizer: { type: 'string' },
    },
  });
  const quick = values.quick!;
  const onVllm = values.backend === 'vllm';
  if (!onVllm && values.backend !== 'sim') throw new Error(`--backend must be sim or vllm, got '${values.backend}'`);
  const vllmServers = Number(values['vllm-servers']);
  if (!Number.isInteger(vllmServers) || vllmServers < 1 || vllmServers > 4) throw new Error(`--vllm-servers must be 1 to 4, got '${values['vllm-servers']}'`);
  const rounds = Number(values.rounds ?? (onVllm ? 2 : 1));
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got '${values.rounds}'`);
  const timeScale = Number(values['time-scale']);
  const out = values.out ?? `bench/results/routing${onVllm ? '-vllm' : ''}${quick ? '-quick' : ''}.json`;
  const size = onVllm ? 'vllm' : quick ? 'quick' : 'full';
  let strategies = values.strategies ? STRATEGIES.filter((s) => values.strategies!.split(',').includes(s.name)) : STRATEGIES.filter((s) => !s.precise && !s.optional);
  const precise = strategies.some((s) => s.precise);
  if (onVllm && values.tokenizer) throw new Error('--tokenizer is for simulated servers; real vLLM uses its model');
  // One tokenizer for every strategy of a run: the servers' work must not differ between them.
  // (Real vLLM tokenizes with its model whatever the strategy; workloads keep their sizes there.)
  const tokenizer = onVllm ? undefined : values.tokenizer ? resolve(values.tokenizer) : precise ? join(REPO, 'test/fixtures/tiny-tokenizer') : undefined;
  const encoder: PromptEncoder = tokenizer ? await modelDirectoryEncoder(tokenizer) : STAND_IN_ENCODER;
  // Workloads are sized in tokens: their text is as long as that many of this tokenizer's tokens.
  const sample = text(prng(1), 4000);
  const charsPerToken = tokenizer ? sample.length / encoder.text(sample, false).length : 4;
  const simOptions: SimFleetOptions = { ...(tokenizer ? { tokenizer } : {}), ...(precise ? { kvEvents: true } : {}) };
  let workloads = allWorkloads(Number(values.seed), size, onVllm ? { model: 'tiny', servers: vllmServers } : undefined, charsPerToken);
  if (onVllm && quick) workloads = workloads.filter((w) => ['shared-system-prompts', 'random-prompts'].includes(w.name));
  if (values.only) workloads = workloads.filter((w) => values.only!.split(',').includes(w.name));
  if (values.scheduler) {
    const scheduler = JSON.parse(values.scheduler) as Record<string, unknown>;
    strategies = strategies.map((s) => (s.name === 'ours' ? { ...s, label: `ours with ${values.scheduler}`, scheduler } : s));
  }
  if (values.replicas) {
    const counts = values.replicas.split(',').map(Number);
    if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 4)) throw new Error(`--replicas must list counts from 1 to 4, got '${values.replicas}'`);
    strategies = strategies.flatMap((s) =>
      s.envoyOnly ? [s] : counts.map((n) => (n === 1 ? s : { ...s, name: `${s.name}-x${n}`, label: `${s.label}, ${n} router replicas`, replicas: n })),
    );
  }
  if (strategies.length === 0) throw new Error(`--strategies: none of ${STRATEGIES.map((s) => s.name).join(', ')}`);
  const fleets = onVllm ? ['real-vllm'] : (values.fleets?.split(',') ?? Object.keys(SIM_FLEETS));
  const unknownFleet = fleets.find((f) => !onVllm && !(f in SIM_FLEETS));
  if (unknownFleet) throw new Error(`--fleets: unknown fleet '${unknownFleet}' (${Object.keys(SIM_FLEETS).join(', ')})`);
  const budgetMs = quick ? (onVllm ? 15_000 : 8_000) : 60_000;
  const started = Date.now();

  const vllm = onVllm ? await startVllmFleet(vllmServers, 'tiny', { kvEvents: precise }) : undefined;
  const engine = vllm ? vllm.engine : BENCH_ENGINE;
  const rows: RunResult[] = [];
  const bounds = new Map<string, number>();
  try {
    for (const fleetName of fleets) {
      const shapes = SIM_FLEETS[fleetName]?.shapes ?? [{}];
      const backend: Backend = vllm ? { kind: 'vllm', fleet: vllm } : { kind: 'sim', timeScale, shapes, options: simOptions };
      for (const workload of workloads) {
        const runs = new Map<string, Run[]>(strategies.map((s) => [s.name, []]));
        for (let r = 0; r < rounds; r++) {
          // Each round starts one strategy later, so no strategy always follows the same one.
          for (let k = 0; k < strategies.length; k++) {
            const strategy = strategies[(k + r) % strategies.length]!;
            const run = await runOne(workload, strategy, backend, budgetMs);
            runs.get(strategy.name)!.push(run);
            const ok = run.results.filter((x) => x.ok).length;
            process.stderr.write(`${fleetName} / ${workload.name} / ${strategy.name} (round ${r + 1}): ${ok}/${run.results.length} ok, ${completedPerS(run).toFixed(2)} req/s\n`);
          }
        }
        for (const strategy of strategies) rows.push(summarize(fleetName, workload, strategy, runs.get(strategy.name)!));
        // The bound replays through the simulator's engine and tokenizer: meaningful for simulated fleets only.
        if (!onVllm) {
          const sent = runs.get(strategies[0]!.name)![0]!.sent;
          // Per model: one server with all of that model's servers' blocks; tokens summed over models.
          let hits = 0;
          let queries = 0;
          for (const { model, servers } of workload.fleet) {
            const mine = sent.filter((x) => x.request.model === model);
            let blocks = 0;
            for (let i = 0; i < servers; i++) blocks += shapes[i % shapes.length]!.numGpuBlocks ?? BENCH_ENGINE.numGpuBlocks;
            const bound = upperBoundHits(mine, blocks, BENCH_ENGINE.blockSize, encoder);
            hits += bound.hits;
            queries += bound.queries;
          }
          bounds.set(boundKey(fleetName, workload.name), round(queries > 0 ? hits / queries : 0, 4));
        }
      }
    }
  } finally {
    closeClient();
    await vllm?.stop();
  }

  const args = process.argv.slice(2).join(' ');
  const report = {
    command: `npm run bench:routing${args ? ` -- ${args}` : ''}`,
    date: new Date().toISOString(),
    backend: onVllm ? `real vLLM (CPU build), ${vllmServers} servers, one core each` : 'simulated vLLM, 4 servers',
    quick,
    rounds,
    timeScale,
    engine,
    tokenizer: onVllm ? "the model's" : (tokenizer ?? "the simulator's stand-in"),
    charsPerToken: round(charsPerToken, 2),
    fleets: fleets.map((name) => ({ name, description: SIM_FLEETS[name]?.description ?? `real vLLM, ${vllmServers} servers` })),
    strategies: strategies.map((s) => ({ name: s.name, label: s.label })),
    workloads: workloads.map((w) => ({ name: w.name, description: w.description, fleet: w.fleet, concurrency: w.concurrency })),
    upperBoundHitRates: Object.fromEntries(bounds),
    results: rows,
    verdicts: [
      ...(quick ? ['quick mode: a few dozen requests per run, dominated by cold caches; the targets are judged on the full run'] : []),
      ...leastRequestVerdicts(rows),
      ...replicaVerdicts(rows),
      ...preciseVerdicts(rows),
      ...adapterVerdicts(rows),
      ...(onVllm ? [] : cacheVerdicts(rows, bounds)),
    ],
    elapsedS: round((Date.now() - started) / 1000),
  };
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(report, null, 2) + '\n');
  const groups = fleets.flatMap((f) => workloads.map((w) => ({ fleet: f, workload: w.name })));
  const names = groups.map((g) => (fleets.length > 1 ? `${g.fleet} ${g.workload}` : g.workload));
  const strategyNames = strategies.map((s) => s.name);
  const pick = (f: (r: RunResult) => number) =>
    groups.map((g) => strategyNames.map((s) => f(rows.find((r) => r.fleet === g.fleet && r.workload === g.workload && r.strategy === s)!)));
  const svg = groupedBarsSvg(names, strategyNames, [
    { title: 'Time to first token, p50', unit: 'ms, lower is better', values: pick((r) => r.ttftMs.p50) },
    { title: 'Prefix-cache hit rate', unit: 'share of prompt tokens, higher is better', values: pick((r) => r.hitRate), marks: groups.map((g) => bounds.get(boundKey(g.fleet, g.workload))) },
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
