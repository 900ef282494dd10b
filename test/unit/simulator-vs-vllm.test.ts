import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../src/launcher/envoy.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/server.js';

/**
 * The simulator against a recorded real vLLM (test/fixtures/vllm-sample, written by
 * `npm run vllm:record-sample`): the metric families the router reads or will read, with the
 * same types and label names, no family vLLM does not have, and the same /v1/models fields.
 */
const SAMPLE = join(REPO, 'test/fixtures/vllm-sample');

/** Families routing depends on: load, cache, prompt accounting, and the timing histograms. */
const READ_BY_THE_ROUTER = [
  'vllm:num_requests_running',
  'vllm:num_requests_waiting',
  'vllm:num_requests_waiting_by_reason',
  'vllm:kv_cache_usage_perc',
  'vllm:prefix_cache_queries_total',
  'vllm:prefix_cache_hits_total',
  'vllm:prompt_tokens_total',
  'vllm:prompt_tokens_cached_total',
  'vllm:prompt_tokens_by_source_total',
  'vllm:generation_tokens_total',
  'vllm:num_preemptions_total',
  'vllm:request_success_total',
  'vllm:cache_config_info',
  'vllm:time_to_first_token_seconds',
  'vllm:inter_token_latency_seconds',
  'vllm:e2e_request_latency_seconds',
  'vllm:request_queue_time_seconds',
  'vllm:request_prefill_time_seconds',
  'vllm:request_decode_time_seconds',
  'vllm:iteration_tokens_total',
];

interface Family {
  type: string;
  /** Label names of its samples, `le` and `quantile` aside, sorted. */
  labels: string[];
  /** Label names in the order the first sample writes them. */
  order: string[];
}

function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      if (type[1]!.endsWith('_created')) continue; // prometheus_client's creation timestamps
      out.set(type[1]!, { type: type[2]!, labels: [], order: [] });
      continue;
    }
    const sample = /^([^\s{#]+)(?:\{([^}]*)\})? /.exec(line);
    if (!sample) continue;
    const name = [...out.keys()].find((f) => sample[1] === f || (sample[1]!.startsWith(f) && /^_(bucket|count|sum)$/.test(sample[1]!.slice(f.length))));
    if (!name) continue;
    const family = out.get(name)!;
    if (family.order.length > 0) continue;
    family.order = [...(sample[2] ?? '').matchAll(/([a-zA-Z_]+)="/g)].map((m) => m[1]!);
    family.labels = family.order.filter((l) => l !== 'le' && l !== 'quantile').sort();
  }
  return out;
}

describe('the simulator, calibrated against a recorded vLLM', () => {
  let sim: SimulatorHandle;
  const real = families(readFileSync(join(SAMPLE, 'metrics.txt'), 'utf8'));
  const realModels = JSON.parse(readFileSync(join(SAMPLE, 'models.json'), 'utf8')) as { data: Array<Record<string, unknown>> };
  let simulated: Map<string, Family>;

  beforeAll(async () => {
    sim = await startSimulator({ models: ['tiny'], engine: { timeScale: 0.01 } });
    await fetch(`${sim.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'hello', max_tokens: 2 }) });
    simulated = families(await (await fetch(`${sim.url}/metrics`)).text());
  });
  afterAll(async () => {
    await sim?.close();
  });

  it('exposes every family the router reads, typed and labelled as vLLM does', () => {
    for (const name of READ_BY_THE_ROUTER) {
      expect(real.get(name), `${name} in the vLLM sample`).toBeDefined();
      expect(simulated.get(name), `${name} in the simulator`).toBeDefined();
      expect({ name, type: simulated.get(name)!.type, labels: simulated.get(name)!.labels }).toEqual({ name, type: real.get(name)!.type, labels: real.get(name)!.labels });
    }
  });

  it('invents no family, and writes labels in the same order', () => {
    for (const [name, family] of simulated) {
      expect(real.has(name), `${name} is not a vLLM family`).toBe(true);
      expect({ name, order: family.order }).toEqual({ name, order: real.get(name)!.order });
    }
  });

  it('lists models with the same fields', async () => {
    const listed = (await (await fetch(`${sim.url}/v1/models`)).json()) as { data: Array<Record<string, unknown>> };
    expect(Object.keys(listed.data[0]!).sort()).toEqual(Object.keys(realModels.data[0]!).sort());
    const permission = (m: Record<string, unknown>) => Object.keys((m.permission as Array<Record<string, unknown>>)[0]!).sort();
    expect(permission(listed.data[0]!)).toEqual(permission(realModels.data[0]!));
  });
});
