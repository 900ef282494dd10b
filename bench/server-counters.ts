import { parsePrometheusText } from '../src/fleet/prometheus-text.js';

/**
 * What a model server has done, from its own /metrics (vLLM's counters, which the simulator
 * serves too): a run's figures are the difference between two readings, so servers that live
 * across runs (real vLLM) are measured like fresh ones.
 */
export interface ServerCounters {
  served: number;
  /** Prompt tokens looked up in the prefix cache, and how many of them were found. */
  prefixQueries: number;
  prefixHits: number;
  preemptions: number;
  promptTokens: number;
  /** LoRA adapters loaded into a batch slot: simulated servers only (their /_sim/stats); vLLM reports none. */
  adapterLoads: number;
}

const FAMILIES: Record<string, keyof ServerCounters> = {
  'vllm:request_success_total': 'served',
  'vllm:prefix_cache_queries_total': 'prefixQueries',
  'vllm:prefix_cache_hits_total': 'prefixHits',
  'vllm:num_preemptions_total': 'preemptions',
  'vllm:prompt_tokens_total': 'promptTokens',
};

export async function readCounters(baseUrl: string): Promise<ServerCounters> {
  const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${baseUrl}/metrics: ${res.status}`);
  const counters: ServerCounters = { served: 0, prefixQueries: 0, prefixHits: 0, preemptions: 0, promptTokens: 0, adapterLoads: 0 };
  // Sums over labels (request_success_total has one series per finish reason).
  for (const sample of parsePrometheusText(await res.text(), (name) => name in FAMILIES).samples) counters[FAMILIES[sample.name]!] += sample.value;
  const sim = await fetch(`${baseUrl}/_sim/stats`, { signal: AbortSignal.timeout(10_000) });
  if (sim.ok) counters.adapterLoads = ((await sim.json()) as { loraLoads?: number }).loraLoads ?? 0;
  else await sim.arrayBuffer();
  return counters;
}

export function countersSince(before: ServerCounters, after: ServerCounters): ServerCounters {
  return {
    served: after.served - before.served,
    prefixQueries: after.prefixQueries - before.prefixQueries,
    prefixHits: after.prefixHits - before.prefixHits,
    preemptions: after.preemptions - before.preemptions,
    promptTokens: after.promptTokens - before.promptTokens,
    adapterLoads: after.adapterLoads - before.adapterLoads,
  };
}
