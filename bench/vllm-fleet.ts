import { parseVllmMetrics } from '../src/fleet/vllm-metrics.js';
import { TINY_MODEL, startVllmServers, vllmInstalled, type VllmServer } from '../test/helpers/vllm.js';
import { stopWithThisProcess } from './own-session.js';
import type { BenchServer } from './stack.js';

/**
 * Real vLLM servers (the CPU build, one core each) for the routing benchmark. They start once
 * (65-100 s) and serve every run; before each run their prefix caches are emptied
 * (`/reset_prefix_cache`, served in vLLM's dev mode, on loopback only) so every strategy
 * starts cold, as with fresh simulators.
 */
export interface VllmFleet {
  servers: BenchServer[];
  /** vLLM's KV cache per server, as the benchmark configured it. */
  engine: { numGpuBlocks: number; blockSize: number };
  /** Waits until no request is running or waiting, then empties every prefix cache. */
  resetCaches(): Promise<void>;
  stop(): Promise<void>;
}

export const VLLM_BENCH_ENGINE = { numGpuBlocks: 256, blockSize: 32, maxModelLen: 4096 };

/** Requests running or waiting, read as the router reads them. */
async function busy(url: string): Promise<number> {
  const { running, waiting } = parseVllmMetrics(await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()));
  return running + waiting;
}

/** `kvEvents`: every server publishes its KV events (for every strategy alike), for precise strategies to follow. */
export async function startVllmFleet(count: number, model: string, options: { kvEvents?: boolean } = {}): Promise<VllmFleet> {
  if (!vllmInstalled()) throw new Error('real vLLM is not installed: run npm run setup:vllm');
  const started: VllmServer[] = await startVllmServers(count, {
    model,
    kvBlocks: VLLM_BENCH_ENGINE.numGpuBlocks,
    maxModelLen: VLLM_BENCH_ENGINE.maxModelLen,
    env: { VLLM_SERVER_DEV_MODE: '1' },
    ...(options.kvEvents ? { kvEvents: true } : {}),
  });
  for (const s of started) stopWithThisProcess(s.pid, true);
  return {
    servers: started.map((s) => ({
      url: s.url,
      model,
      tokenizer: TINY_MODEL,
      ...(s.kvEndpoint && s.replayEndpoint ? { kvEvents: { endpoint: s.kvEndpoint, replayEndpoint: s.replayEndpoint } } : {}),
    })),
    engine: VLLM_BENCH_ENGINE,
    async resetCaches() {
      for (const s of started) {
        const deadline = Date.now() + 60_000;
        while ((await busy(s.url)) > 0) {
          if (Date.now() > deadline) throw new Error(`${s.url} still busy 60 s after the run`);
          await new Promise((r) => setTimeout(r, 200));
        }
        const res = await fetch(`${s.url}/reset_prefix_cache`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
        if (!res.ok) throw new Error(`${s.url}/reset_prefix_cache: ${res.status} ${await res.text()}`);
      }
    },
    stop: () => Promise.all(started.map((s) => s.stop())).then(() => undefined),
  };
}
