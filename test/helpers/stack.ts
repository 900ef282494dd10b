import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { watchConfigFile } from '../../src/config/watch.js';
import type { RouterConfig } from '../../src/config/schema.js';
import { createLogger, silentLogger } from '../../src/support/log.js';
import { startRouter, type Router } from '../../src/router.js';
import type { EngineOptions } from '../../src/simulator/engine-options.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.js';
import { REPO, startEnvoy, type EnvoyHandle, type StartEnvoyOptions } from '../../src/launcher/envoy.js';

export interface BackendSpec {
  models: string[];
  /** Further names the server answers to that the router is not told about (for direct load). */
  aliases?: string[];
  /** Whether the router config lists the models (true) or discovers them from /v1/models. */
  declareModels?: boolean;
  engine?: Partial<EngineOptions>;
  /** The router's `capacity` for it (default 16). */
  capacity?: number;
  /** LoRA adapters the server serves beside its models (vLLM --lora-modules). */
  loraModules?: Array<{ name: string; path: string }>;
  /** Publish KV events (vLLM's format, on ipc:// sockets) and tell the router where. */
  kvEvents?: boolean;
  /** A model directory whose tokenizer and chat template the simulator uses. */
  tokenizer?: string;
}

export interface Stack {
  envoy: EnvoyHandle;
  /** The router currently running (replaced by restartRouter). */
  router: Router;
  /** Stops the router, as a crash or an upgrade would. */
  stopRouter(): Promise<void>;
  /** Starts a fresh router on the same ports with the current config file. */
  restartRouter(): Promise<Router>;
  sims: SimulatorHandle[];
  configPath: string;
  /** The raw config the stack started with, with `extra` merged over it. */
  routerConfig(extra?: Record<string, unknown>): Record<string, unknown>;
  /** Rewrites the watched config file; the router reloads it as in production. */
  writeConfig(raw: Record<string, unknown> | string): Promise<void>;
  reloadErrors: Error[];
  close(): Promise<void>;
}

export interface StackOptions {
  backends: BackendSpec[];
  /** Extra router config merged over the generated one. */
  config?: Record<string, unknown>;
  envoy?: Partial<StartEnvoyOptions>;
  defaultEngine?: Partial<EngineOptions>;
  /**
   * Servers already running (real vLLM) to use instead of simulators, one per entry of
   * `backends`, in order.
   */
  backendUrls?: string[];
  /** Where each of `backendUrls` publishes KV events, if it does. */
  backendKvEvents?: Array<{ endpoint: string; replayEndpoint?: string } | undefined>;
  /** How long the backends may take to turn healthy in the router (default 10 s). */
  readyTimeoutMs?: number;
  /** Called with the simulators once they listen, before Envoy starts (to render its config). */
  beforeEnvoy?: (sims: SimulatorHandle[]) => void;
}

/** Fast engines for tests: real queueing and caching, at a small fraction of real time. */
export const FAST_ENGINE: Partial<EngineOptions> = { timeScale: 0.05 };

export function backendEntries(sims: Array<{ url: string }>, specs: BackendSpec[]) {
  return sims.map((sim, i) => ({
    name: `sim-${i}`,
    url: sim.url,
    ...(specs[i]!.declareModels === false ? {} : { models: specs[i]!.models }),
    capacity: specs[i]!.capacity ?? 16,
  }));
}

/**
 * Simulated vLLM servers, the router in this process and a real Envoy in front: the whole
 * product on loopback, ready when Envoy's xDS initial fetch is done.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const sims: SimulatorHandle[] = [];
  let router: Router | undefined;
  let envoy: EnvoyHandle | undefined;
  const dir = await mkdtemp(join(tmpdir(), 'router-stack-'));
  const configPath = join(dir, 'router.yaml');
  let stopWatcher = () => {};
  try {
    const kvEndpoints: Array<{ endpoint: string; replayEndpoint?: string } | undefined> = [...(options.backendKvEvents ?? [])];
    for (const [i, spec] of (options.backendUrls ? [] : options.backends).entries()) {
      const kv = spec.kvEvents ? { endpoint: `ipc://${dir}/kv-${i}.sock`, replayEndpoint: `ipc://${dir}/kv-replay-${i}.sock` } : undefined;
      kvEndpoints.push(kv);
      const kvEvents = kv ? { ...kv, topic: '', bufferSteps: 10_000, hwm: 100_000, encoding: 'maps' as const } : undefined;
      sims.push(await startSimulator({ models: [...spec.models, ...(spec.aliases ?? [])], engine: { ...FAST_ENGINE, ...options.defaultEngine, ...spec.engine }, kvEvents, ...(spec.tokenizer ? { tokenizer: spec.tokenizer } : {}), ...(spec.loraModules ? { loraModules: spec.loraModules } : {}) }));
    }
    const raw = {
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      scraping: { intervalMs: 50, timeoutMs: 500, staleAfterMs: 1000, unhealthyAfterFailures: 2, modelsRefreshMs: 500 },
      upstream: { healthCheckIntervalMs: 500, ejectionTimeMs: 2000 },
      backends: backendEntries(options.backendUrls?.map((url) => ({ url })) ?? sims, options.backends).map((b, i) => (kvEndpoints[i] ? { ...b, kvEvents: kvEndpoints[i] } : b)),
      ...options.config,
    };
    await writeFile(configPath, stringify(raw));
    const logger = process.env.TEST_LOG ? createLogger('debug') : silentLogger;
    router = await startRouter(parseConfig(raw), logger);
    await waitFor(() => router!.fleet.backends().every((b) => b.health === 'healthy' && b.models.length > 0), options.readyTimeoutMs ?? 10_000, 'backends healthy');
    const config = parseConfig(raw);
    const reloadErrors: Error[] = [];
    const grpcPort = router.grpcPort;
    const adminPort = router.adminPort;
    const watcher = watchConfigFile({
      path: configPath,
      current: config,
      debounceMs: 20,
      onConfig: (next) => stack.router.applyConfig(next),
      onError: (err) => reloadErrors.push(err),
    });
    stopWatcher = () => watcher.close();
    options.beforeEnvoy?.(sims);
    envoy = await startEnvoy({ controlPlane: { host: '127.0.0.1', port: router.grpcPort }, concurrency: 1, ...options.envoy });
    let routerStopped = false;
    const stack: Stack = {
      envoy,
      router,
      sims,
      async stopRouter() {
        routerStopped = true;
        await stack.router.close(200);
      },
      async restartRouter() {
        const current = parseConfig(parse(await readFile(configPath, 'utf8')));
        const next = { ...current, grpc: { ...current.grpc, port: grpcPort }, admin: { ...current.admin, port: adminPort } };
        stack.router = await startRouter(next, logger);
        routerStopped = false;
        return stack.router;
      },
      configPath,
      routerConfig: (extra = {}) => ({ ...raw, ...extra }),
      reloadErrors,
      async writeConfig(next) {
        await writeFile(`${configPath}.next`, typeof next === 'string' ? next : stringify(next));
        await rename(`${configPath}.next`, configPath);
      },
      async close() {
        stopWatcher();
        await envoy?.stop();
        if (!routerStopped) await stack.router.close(1000);
        await Promise.all(sims.map((s) => s.close()));
        await rm(dir, { recursive: true, force: true });
      },
    };
    return stack;
  } catch (err) {
    stopWatcher();
    await envoy?.stop();
    await router?.close(500);
    await Promise.all(sims.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Options that put the picker-only Envoy (envoy/mesh/envoy-picker.yaml: streamed bodies, a
 * static pool, no xDS) in front instead of our bootstrap, with the simulators as its pool.
 */
export function pickerOnlyEnvoy(): Pick<StackOptions, 'envoy' | 'beforeEnvoy'> {
  let ports: number[] = [];
  return {
    beforeEnvoy: (sims) => {
      ports = sims.map((s) => s.port);
    },
    envoy: {
      bootstrap: join(REPO, 'envoy/mesh/envoy-picker.yaml'),
      edit: (bootstrap) => {
        const cluster = bootstrap.static_resources.clusters.find((c: { name: string }) => c.name === 'inference_pool');
        cluster.load_assignment.endpoints[0].lb_endpoints = ports.map((port) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
        }));
      },
    },
  };
}
