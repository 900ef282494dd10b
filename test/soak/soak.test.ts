/**
 * Bounded soak: many concurrent streaming and non-streaming clients against the real stack
 * (router and simulators as separate processes, Envoy) while a backend is killed and
 * restarted and the config is reloaded twice. Every request must be answered or fail
 * cleanly (no hang), no non-streaming request may fail, and the router's memory must stay
 * flat. SOAK_SECONDS sets the length (CI runs it briefly; run it longer by hand).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { streamChat } from '../../bench/client.js';
import { startBenchStack } from '../../bench/stack.js';
import { prng, text } from '../../bench/workloads.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 40);
const CLIENTS = 16;

/** One series' value (`name` with its labels, as written on the page). */
function metric(page: string, name: string): number {
  const line = page.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

describe('soak', () => {
  it(`keeps every request answered for ${SECONDS} s through a backend restart and two reloads`, async () => {
    const stack = await startBenchStack([{ model: 'llama-8b', servers: 3 }], { name: 'ours', label: 'ours', scheduler: {} }, 0.2);
    try {
      const random = prng(11);
      const systems = Array.from({ length: 6 }, () => text(random, 600));
      const started = Date.now();
      const deadline = started + SECONDS * 1000;
      let killedAt = 0;
      const outcomes = { streamOk: 0, streamCut: 0, plainOk: 0, plainFailed: [] as string[], hangs: 0, cutAfterKillMs: [] as number[] };
      const heap: Array<{ t: number; bytes: number; fullGcs: number }> = [];

      const client = async (id: number) => {
        const r = prng(100 + id);
        while (Date.now() < deadline) {
          const messages = [
            { role: 'system' as const, content: systems[Math.floor(r() * systems.length)]! },
            { role: 'user' as const, content: text(r, 20 + Math.floor(r() * 60)) },
          ];
          const maxTokens = 4 + Math.floor(r() * 20);
          if (r() < 0.5) {
            const result = await streamChat(stack.url, { model: 'llama-8b', messages, maxTokens }, 30_000);
            if (result.ok && result.completionTokens === maxTokens) outcomes.streamOk++;
            else if (result.error === 'timeout') outcomes.hangs++;
            else {
              outcomes.streamCut++;
              outcomes.cutAfterKillMs.push(killedAt ? Date.now() - killedAt : -1);
            }
          } else {
            try {
              const res = await fetch(`${stack.url}/v1/chat/completions`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ model: 'llama-8b', messages, max_tokens: maxTokens, ignore_eos: true }),
                signal: AbortSignal.timeout(30_000),
              });
              const body = (await res.json()) as { usage?: { completion_tokens: number } };
              if (res.status === 200 && body.usage?.completion_tokens === maxTokens) outcomes.plainOk++;
              else outcomes.plainFailed.push(`${res.status} ${JSON.stringify(body).slice(0, 200)}`);
            } catch (err) {
              if ((err as Error).name === 'TimeoutError') outcomes.hangs++;
              else outcomes.plainFailed.push((err as Error).message);
            }
          }
        }
      };

      const chaos = async () => {
        const at = (share: number) => new Promise((r) => setTimeout(r, Math.max(0, started + SECONDS * 1000 * share - Date.now())));
        await at(0.3);
        killedAt = Date.now();
        await stack.restartSim(0, 1000);
        await at(0.5);
        const config = parse(await readFile(stack.configPath, 'utf8'));
        await writeFile(stack.configPath, stringify({ ...config, scheduler: { fallbacks: 1 } }));
        await at(0.7);
        await writeFile(stack.configPath, stringify(config));
      };

      const sampler = async () => {
        while (Date.now() < deadline) {
          const page = await fetch(`${stack.routerAdmin}/metrics`).then((r) => r.text());
          heap.push({
            t: Date.now() - started,
            bytes: metric(page, 'vllm_router_process_nodejs_heap_size_used_bytes'),
            fullGcs: metric(page, 'vllm_router_process_nodejs_gc_duration_seconds_count{kind="major"}') || 0,
          });
          await new Promise((r) => setTimeout(r, 1000));
        }
      };

      await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), chaos(), sampler()]);

      const total = outcomes.streamOk + outcomes.streamCut + outcomes.plainOk + outcomes.plainFailed.length + outcomes.hangs;
      console.log(`soak ${SECONDS}s: ${total} requests`, JSON.stringify({ ...outcomes, heapMiB: heap.map((h) => Math.round(h.bytes / 2 ** 20)), fullGcs: heap.at(-1)?.fullGcs }));
      expect(total).toBeGreaterThan(SECONDS * 20);
      expect(outcomes.hangs).toBe(0);
      expect(outcomes.plainFailed).toEqual([]);
      // Only streams that were running on the killed backend may be cut, right when it died.
      for (const ms of outcomes.cutAfterKillMs) expect(ms).toBeGreaterThanOrEqual(0);
      for (const ms of outcomes.cutAfterKillMs) expect(ms).toBeLessThan(3000);
      // Memory flat: what is left just after a full collection, after warm-up, the last such
      // sample against the first. (Between two, V8 lets garbage pile up for as long as 30 s:
      // the lowest samples of two windows compared a collection's timing, not the memory kept.)
      // And never more than a bound, collected or not.
      const afterFullGc = heap.filter((h, i) => i > 0 && h.fullGcs > heap[i - 1]!.fullGcs && h.t >= SECONDS * 250).map((h) => h.bytes);
      if (afterFullGc.length >= 2) expect(afterFullGc.at(-1)!).toBeLessThan(afterFullGc[0]! * 1.25 + 8 * 2 ** 20);
      expect(Math.max(...heap.map((h) => h.bytes))).toBeLessThan(256 * 2 ** 20);
      // The restarted backend is back in rotation.
      const stats = (await fetch(`${stack.routerAdmin}/stats`).then((r) => r.json())) as { backends: Array<{ health: string }> };
      expect(stats.backends.map((b) => b.health)).toEqual(['healthy', 'healthy', 'healthy']);
    } finally {
      await stack.stop();
    }
  });
});
