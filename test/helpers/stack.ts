import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { RouterConfig } from '../../src/config/schema.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { startRouter, type Router } from '../../src/router.js';
import type { EngineOptions } from '../../src/simulator/engine-options.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.js';
import { startEnvoy, type EnvoyHandle, type StartEnvoyOptions } from './envoy.js';

export interface BackendSpec {
  models: string[];
  /** Whether the router config lists the models (true) or discovers them from /v1/models. */
  declareModels?: boolean;
  engine?: Partial<EngineOptions>;
}

export interface Stack {
  envoy: EnvoyHandle;
  router: Router;
  sims: SimulatorHandle[];
  configPath: string;
  /** Writes a router config file (as YAML) and applies it, as a hot reload does. */
  routerConfig(extra?: Record<string, unknown>): Record<string, unknown>;
  close(): Promise<void>;
}

export interface StackOptions {
  backends: BackendSpec[];
  /** Extra router config merged over the generated one. */
  config?: Record<string, unknown>;
  envoy?: Partial<StartEnvoyOptions>;
  defaultEngine?: Partial<EngineOptions>;
}

/** Fast engines for tests: real queueing and caching, at a small fraction of real time. */
export const FAST_ENGINE: Partial<EngineOptions> = { timeScale: 0.05 };

export function backendEntries(sims: SimulatorHandle[], specs: BackendSpec[]) {
  return sims.map((sim, i) => ({
    name: `sim-${i}`,
    url: sim.url,
    ...(specs[i]!.declareModels === false ? {} : { models: specs[i]!.models }),
    capacity: 16,
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
  try {
    for (const spec of options.backends) {
      sims.push(await startSimulator({ models: spec.models, engine: { ...FAST_ENGINE, ...options.defaultEngine, ...spec.engine } }));
    }
    const raw = {
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      scraping: { intervalMs: 50, timeoutMs: 500, staleAfterMs: 1000, unhealthyAfterFailures: 2, modelsRefreshMs: 500 },
      upstream: { healthCheckIntervalMs: 500, ejectionTimeMs: 2000 },
      backends: backendEntries(sims, options.backends),
      ...options.config,
    };
    await writeFile(configPath, stringify(raw));
    const logger = process.env.TEST_LOG ? createLogger('debug') : silentLogger;
    router = await startRouter(parseConfig(raw), logger);
    await waitFor(() => router!.fleet.backends().every((b) => b.health === 'healthy' && b.models.length > 0), 10_000, 'backends healthy');
    envoy = await startEnvoy({ controlPlanePort: router.grpcPort, ...options.envoy });
    const stack: Stack = {
      envoy,
      router,
      sims,
      configPath,
      routerConfig: (extra = {}) => ({ ...raw, ...extra }),
      async close() {
        await envoy?.stop();
        await router?.close(1000);
        await Promise.all(sims.map((s) => s.close()));
        await rm(dir, { recursive: true, force: true });
      },
    };
    return stack;
  } catch (err) {
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
