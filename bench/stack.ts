import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO, startEnvoy, type EnvoyHandle } from '../src/launcher/envoy.js';
import { isStopping, markStopping, stopChildren, waitForHttp } from '../src/launcher/processes.js';
import { stopWithThisProcess } from './own-session.js';

/** A routing strategy under test: Envoy alone, or Envoy with the router and a scheduler config. */
export interface Strategy {
  name: string;
  label: string;
  /** Envoy's own balancing, no ext_proc: the router only serves clusters over xDS. */
  envoyOnly?: 'round_robin' | 'least_request';
  scheduler?: Record<string, unknown>;
  /** Router replicas behind the one Envoy (one active, the others standbys, as envoy/envoy.yaml runs them); 1 unless said. */
  replicas?: number;
  /** Envoy spreads ext_proc streams over all the replicas round robin instead. */
  activeActive?: boolean;
  /** The router follows the servers' KV events and tokenizes prompts with the servers' tokenizer. */
  precise?: boolean;
  /** The router's `flowControl` config. */
  flowControl?: Record<string, unknown>;
  /** Replicas tell each other what they route (config `peers`: every replica's gRPC address). */
  peers?: boolean;
  /** Run only when named (--strategies), like the precise ones. */
  optional?: boolean;
}

export const STRATEGIES: Strategy[] = [
  { name: 'envoy-round-robin', label: 'Envoy round robin', envoyOnly: 'round_robin' },
  { name: 'envoy-least-request', label: 'Envoy least request', envoyOnly: 'least_request' },
  { name: 'random', label: 'random', scheduler: { picker: 'random', scorers: [{ name: 'least-load' }] } },
  {
    name: 'predecessor',
    label: 'predecessor (running+0.5·waiting)/capacity',
    scheduler: { scorers: [{ name: 'least-load' }], load: { waitingWeight: 0.5, kvCacheWeight: 0 } },
  },
  { name: 'ours', label: 'ours (first-token cost)', scheduler: {} },
  { name: 'ours-precise', label: 'ours, precise (KV events + tokenizer)', scheduler: {}, precise: true },
  { name: 'ours-flow', label: 'ours, flow control on', scheduler: {}, flowControl: { enabled: true }, optional: true },
  { name: 'ours-peers', label: 'ours, replicas tell each other what they route', scheduler: {}, peers: true, optional: true },
  { name: 'ours-precise-peers', label: 'ours, precise, replicas tell each other what they route', scheduler: {}, precise: true, peers: true, optional: true },
  { name: 'ours-peers-active-active', label: 'ours, replicas tell each other what they route, all active', scheduler: {}, peers: true, activeActive: true, optional: true },
  { name: 'ours-precise-peers-active-active', label: 'ours, precise, replicas tell each other what they route, all active', scheduler: {}, precise: true, peers: true, activeActive: true, optional: true },
];

/** Engine of every simulated server in the benchmark: small enough that caching matters. */
export const BENCH_ENGINE = { maxNumSeqs: 8, numGpuBlocks: 1024, blockSize: 16, maxNumBatchedTokens: 2048, maxModelLen: 8192 };

/** One simulated server's difference from BENCH_ENGINE. */
export interface SimServerShape {
  /** Every duration this many times longer. */
  slowdown?: number;
  maxNumSeqs?: number;
  numGpuBlocks?: number;
}

/**
 * Fleets of simulated servers, server i of a model taking shape i (cycled). The router is told
 * nothing of them: its default config learns each server's speed and slots from its metrics.
 */
export const SIM_FLEETS: Record<string, { description: string; shapes: SimServerShape[] }> = {
  uniform: { description: 'equal servers (8 slots, 1,024 KV blocks of 16 tokens)', shapes: [{}] },
  'mixed-speed': { description: 'two servers at full speed, one 2x slower, one 3x slower', shapes: [{}, {}, { slowdown: 2 }, { slowdown: 3 }] },
  'mixed-slots': { description: 'servers with 8 and 32 slots, alternately', shapes: [{ maxNumSeqs: 8 }, { maxNumSeqs: 32 }] },
  'small-cache': { description: 'half the KV cache (512 blocks, 8,192 tokens): prompts evict one another', shapes: [{ numGpuBlocks: 512 }] },
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** One model server of the fleet under test: a simulator or a real vLLM. */
export interface BenchServer {
  url: string;
  model: string;
  /** Where it publishes its KV events, if it does. */
  kvEvents?: { endpoint: string; replayEndpoint: string };
  /** The model directory whose tokenizer it uses, if not the simulator's stand-in. */
  tokenizer?: string;
  /** The router reads its models from its /v1/models instead of being told (it serves LoRA adapters). */
  discoverModels?: boolean;
}

/** How the simulated servers of a run tokenize and whether they publish KV events (the same for every strategy). */
export interface SimFleetOptions {
  tokenizer?: string;
  kvEvents?: boolean;
  /** LoRA adapters every server serves (--enable-lora --lora-modules), at most maxLoras in a batch. */
  lora?: { adapters: readonly string[]; maxLoras: number };
}

/** The router's config fields for a backend beyond its URL and model (e.g. `capacity`). */
export type BackendExtras = Record<string, unknown>;

export interface SimFleet {
  sims: BenchServer[];
  /** Kills simulated server i (in-flight work is cut), waits `downMs`, starts it again on its port. */
  restartSim(i: number, downMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Envoy, and the router unless the strategy is Envoy alone, in front of a running fleet. */
export interface RoutingLayer {
  url: string;
  /** The (first) router's admin URL, and every replica's. */
  routerAdmin: string;
  routerAdmins: string[];
  /** The (first) router's config file (watched: rewrite it to reload). */
  configPath: string;
  routerPid: number;
  /** Every replica's process, the active one first. */
  routerPids: number[];
  /** Envoy's admin URL (its /stats). */
  envoyAdmin: string;
  stop(): Promise<void>;
}

export type RunningStack = RoutingLayer & SimFleet;

function node(script: string, args: string[], ownSession = false): ChildProcess {
  const child = spawn(process.execPath, [join(REPO, 'dist', script), ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: ownSession });
  if (ownSession) stopWithThisProcess(child.pid);
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  child.on('exit', (code) => {
    if (code && code !== 0 && !isStopping(child)) process.stderr.write(`${script} exited ${code}: ${err}\n`);
  });
  return child;
}

/** Fresh simulated servers (empty caches) on loopback, each its own process. */
export async function startSimFleet(
  fleet: Array<{ model: string; servers: number }>,
  timeScale: number,
  shapes: readonly SimServerShape[] = [{}],
  options: SimFleetOptions = {},
): Promise<SimFleet> {
  const children: ChildProcess[] = [];
  const sims: BenchServer[] = [];
  const shapeOf: SimServerShape[] = [];
  const socketDir = options.kvEvents ? await mkdtemp(join(tmpdir(), 'bench-kv-')) : undefined;
  const eventsOf = (port: number) => (socketDir ? { endpoint: `ipc://${socketDir}/kv-${port}.sock`, replayEndpoint: `ipc://${socketDir}/kv-replay-${port}.sock` } : undefined);
  const startSim = (port: number, model: string, shape: SimServerShape) => {
    const events = eventsOf(port);
    return node('simulator/main.js', [
      '--port', String(port), '--model', model, '--time-scale', String(timeScale * (shape.slowdown ?? 1)),
      '--max-num-seqs', String(shape.maxNumSeqs ?? BENCH_ENGINE.maxNumSeqs), '--num-gpu-blocks', String(shape.numGpuBlocks ?? BENCH_ENGINE.numGpuBlocks),
      '--block-size', String(BENCH_ENGINE.blockSize), '--max-num-batched-tokens', String(BENCH_ENGINE.maxNumBatchedTokens),
      '--max-model-len', String(BENCH_ENGINE.maxModelLen),
      ...(options.tokenizer ? ['--tokenizer', options.tokenizer] : []),
      ...(options.lora
        ? ['--enable-lora', '--max-loras', String(options.lora.maxLoras), '--lora-modules', ...options.lora.adapters.map((a) => `${a}=/adapters/${a}`)]
        : []),
      ...(events
        ? ['--kv-events-config', JSON.stringify({ enable_kv_cache_events: true, publisher: 'zmq', endpoint: events.endpoint, replay_endpoint: events.replayEndpoint })]
        : []),
    ]);
  };
  const cleanUp = async () => {
    await stopChildren(children);
    if (socketDir) await rm(socketDir, { recursive: true, force: true });
  };
  try {
    for (const { model, servers } of fleet) {
      for (let i = 0; i < servers; i++) {
        const port = await freePort();
        const shape = shapes[i % shapes.length]!;
        children.push(startSim(port, model, shape));
        const events = eventsOf(port);
        sims.push({
          url: `http://127.0.0.1:${port}`,
          model,
          ...(events ? { kvEvents: events } : {}),
          ...(options.tokenizer ? { tokenizer: options.tokenizer } : {}),
          ...(options.lora ? { discoverModels: true } : {}),
        });
        shapeOf.push(shape);
      }
    }
    await Promise.all(sims.map((s) => waitForHttp(`${s.url}/health`, 'simulator')));
  } catch (err) {
    await cleanUp();
    throw err;
  }
  const current = [...children];
  return {
    sims,
    async restartSim(i, downMs) {
      const old = current[i]!;
      markStopping(old);
      const exited = new Promise((r) => old.once('exit', r));
      old.kill('SIGKILL');
      await exited;
      await new Promise((r) => setTimeout(r, downMs));
      const sim = sims[i]!;
      const fresh = startSim(Number(new URL(sim.url).port), sim.model, shapeOf[i]!);
      current[i] = fresh;
      children.push(fresh);
      await waitForHttp(`${sim.url}/health`, 'restarted simulator');
    },
    stop: cleanUp,
  };
}

/**
 * A fresh router (its config listing `servers`, with `extras` on each backend) and Envoy, on
 * loopback. For an Envoy-only strategy the router still serves Envoy's clusters over xDS, but
 * Envoy's ext_proc filter is removed, so Envoy balances on its own (the large-body filter stays:
 * routes name it, and it is off unless a body is over the fail-open bound).
 */
export async function startRoutingLayer(
  servers: readonly BenchServer[],
  strategy: Strategy,
  options: {
    extras?: BackendExtras;
    scraping?: Record<string, unknown>;
    editEnvoy?: (bootstrap: any) => void;
    /**
     * Each router and Envoy in a session of its own. The kernel here shares CPU between sessions
     * (sched_autogroup) and real vLLM servers run in theirs: without this the routers and Envoy
     * share one share with the load generator, where in containers each has its own.
     */
    ownSessions?: boolean;
  } = {},
): Promise<RoutingLayer> {
  const children: ChildProcess[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'bench-routing-'));
  let envoy: EnvoyHandle | undefined;
  try {
    if (strategy.precise && servers.some((s) => !s.kvEvents || !s.tokenizer)) {
      throw new Error(`${strategy.name} needs servers that publish KV events and use a model directory's tokenizer`);
    }
    const tokenizers = strategy.precise ? Object.fromEntries(servers.map((s) => [s.model, s.tokenizer!])) : undefined;
    const config = {
      backends: servers.map((s, i) => ({
        name: `server-${i}`,
        url: s.url,
        // Adapters are known as adapters (their parent) from the servers' /v1/models only.
        ...(s.discoverModels ? {} : { models: [s.model] }),
        ...options.extras,
        ...(strategy.precise ? { kvEvents: s.kvEvents } : {}),
      })),
      ...(tokenizers ? { tokenizers } : {}),
      ...(options.scraping ? { scraping: options.scraping } : {}),
      upstream: { fallbackPolicy: strategy.envoyOnly ?? 'least_request' },
      ...(strategy.scheduler ? { scheduler: strategy.scheduler } : {}),
      ...(strategy.flowControl ? { flowControl: strategy.flowControl } : {}),
    };
    // Replicas share everything but their ports; the first one's config file is the one to edit for a reload.
    const replicas: Array<{ grpcPort: number; admin: string; configPath: string; pid: number }> = [];
    const grpcPorts: number[] = [];
    for (let r = 0; r < (strategy.replicas ?? 1); r++) grpcPorts.push(await freePort());
    // One list for every replica: each ignores its own address.
    const peers = strategy.peers ? { peers: { addresses: grpcPorts.map((p) => `127.0.0.1:${p}`) } } : {};
    for (let r = 0; r < grpcPorts.length; r++) {
      const grpcPort = grpcPorts[r]!;
      const adminPort = await freePort();
      const configPath = join(dir, r === 0 ? 'router.yaml' : `router-${r}.yaml`);
      await writeFile(configPath, stringify({ grpc: { host: '127.0.0.1', port: grpcPort }, admin: { host: '127.0.0.1', port: adminPort }, ...config, ...peers }));
      const router = node('main.js', ['--config', configPath, '--log-level', 'warn'], options.ownSessions);
      children.push(router);
      replicas.push({ grpcPort, admin: `http://127.0.0.1:${adminPort}`, configPath, pid: router.pid! });
    }
    for (const replica of replicas) await waitForHttp(`${replica.admin}/health`, 'router');

    envoy = await startEnvoy({
      controlPlane: replicas.map((replica) => ({ host: '127.0.0.1', port: replica.grpcPort })),
      activeActive: strategy.activeActive ?? false,
      ownSession: options.ownSessions ?? false,
      edit: (bootstrap) => {
        options.editEnvoy?.(bootstrap);
        if (!strategy.envoyOnly) return;
        const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
        hcm.http_filters = hcm.http_filters.filter((f: { name: string }) => f.name !== 'envoy.filters.http.ext_proc');
      },
    });
    const handle = envoy;
    if (options.ownSessions) stopWithThisProcess(handle.process.pid);
    // Models the router discovers reach Envoy's routes with its first /v1/models reads.
    const discovered = [...new Set(servers.filter((s) => s.discoverModels).map((s) => s.model))];
    for (let tries = 0; discovered.length > 0; tries++) {
      const listed = await fetch(`${handle.url}/v1/models`).then((r) => (r.ok ? (r.json() as Promise<{ data?: Array<{ id: string }> }>) : { data: [] }));
      if (discovered.every((m) => listed.data?.some((c) => c.id === m))) break;
      if (tries >= 150) throw new Error(`the router did not list ${discovered.join(', ')} within 15 s: ${JSON.stringify(listed).slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      url: handle.url,
      routerAdmin: replicas[0]!.admin,
      routerAdmins: replicas.map((replica) => replica.admin),
      configPath: replicas[0]!.configPath,
      routerPid: replicas[0]!.pid,
      routerPids: replicas.map((replica) => replica.pid),
      envoyAdmin: handle.adminUrl,
      async stop() {
        await handle.stop();
        await stopChildren(children);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await envoy?.stop();
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Fresh simulated servers, a fresh router and Envoy, all on loopback. */
export async function startBenchStack(
  fleet: Array<{ model: string; servers: number }>,
  strategy: Strategy,
  timeScale: number,
  shapes?: readonly SimServerShape[],
): Promise<RunningStack> {
  const sims = await startSimFleet(fleet, timeScale, shapes);
  try {
    const routing = await startRoutingLayer(sims.sims, strategy);
    return {
      ...sims,
      ...routing,
      async stop() {
        await routing.stop();
        await sims.stop();
      },
    };
  } catch (err) {
    await sims.stop();
    throw err;
  }
}
