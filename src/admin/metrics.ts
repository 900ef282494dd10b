import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Backend, FleetView } from '../fleet/backend.js';

/** The control plane's own Prometheus metrics. */
export interface RouterMetrics {
  registry: Registry;
  decisions: Counter<'model' | 'backend'>;
  rejections: Counter<'code' | 'status'>;
  decisionSeconds: Histogram<never>;
  upstreamResponses: Counter<'backend' | 'class'>;
  promptTokenizations: Counter<'model' | 'outcome'>;
  /** Flow control: how long held requests waited, by how their hold ended; sheds by reason and band. */
  flowWaitSeconds: Histogram<'outcome'>;
  flowShed: Counter<'reason' | 'priority'>;
}

/** Held requests per priority band, read when scraped. */
export type HeldByBand = () => ReadonlyArray<{ priority: number; tenants: ReadonlyArray<{ queued: number }> }>;

export function createRouterMetrics(fleet: FleetView, heldByBand?: HeldByBand): RouterMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'vllm_router_process_' });
  const decisions = new Counter({
    name: 'vllm_router_decisions_total',
    help: 'Requests routed, by model and chosen backend.',
    labelNames: ['model', 'backend'] as const,
    registers: [registry],
  });
  const rejections = new Counter({
    name: 'vllm_router_rejections_total',
    help: 'Requests answered by the router itself with an error, by error code.',
    labelNames: ['code', 'status'] as const,
    registers: [registry],
  });
  const decisionSeconds = new Histogram({
    name: 'vllm_router_decision_seconds',
    help: 'Time from the complete request body to the routing answer.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05],
    registers: [registry],
  });
  const upstreamResponses = new Counter({
    name: 'vllm_router_upstream_responses_total',
    help: 'Response status classes seen from backends, by backend.',
    labelNames: ['backend', 'class'] as const,
    registers: [registry],
  });
  const promptTokenizations = new Counter({
    name: 'vllm_router_prompt_tokenizations_total',
    help: 'Prompts of models with a configured tokenizer: tokenized, or why not (matched on text instead).',
    labelNames: ['model', 'outcome'] as const,
    registers: [registry],
  });
  const flowWaitSeconds = new Histogram({
    name: 'vllm_router_flow_wait_seconds',
    help: 'Time requests were held by flow control while every server of their model was saturated, by outcome (released, or shed).',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const flowShed = new Counter({
    name: 'vllm_router_flow_shed_total',
    help: 'Requests flow control answered 429 instead of routing, by reason (queue-full, wait-limit, displaced) and priority band.',
    labelNames: ['reason', 'priority'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'vllm_router_flow_queued',
    help: 'Requests held by flow control now, by priority band (per tenant in /stats).',
    labelNames: ['priority'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const band of heldByBand?.() ?? []) this.set({ priority: String(band.priority) }, band.tenants.reduce((n, t) => n + t.queued, 0));
    },
  });
  const gauge = (name: string, help: string, read: (b: Backend) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['backend'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const b of fleet.backends()) {
          const value = read(b);
          if (value !== undefined) this.set({ backend: b.id }, value);
        }
      },
    });
  gauge('vllm_router_backend_healthy', 'Whether the backend is in rotation (1) or not (0).', (b) => (b.health === 'unhealthy' ? 0 : 1));
  gauge('vllm_router_backend_inflight', 'Requests routed to the backend and not finished.', (b) => b.inflight);
  gauge('vllm_router_backend_running', 'vllm:num_requests_running at the last scrape.', (b) => b.metrics?.running);
  gauge('vllm_router_backend_waiting', 'vllm:num_requests_waiting at the last scrape.', (b) => b.metrics?.waiting);
  gauge('vllm_router_backend_kv_cache_usage', 'vllm:kv_cache_usage_perc at the last scrape (0..1).', (b) => b.metrics?.kvCacheUsage);
  gauge('vllm_router_backend_scrape_age_seconds', 'Seconds since the last successful /metrics scrape.', (b) =>
    b.lastScrapeOkAt === undefined ? undefined : (Date.now() - b.lastScrapeOkAt) / 1000,
  );
  gauge('vllm_router_backend_capacity', 'Requests the backend runs before others wait: configured, else learned from its metrics.', (b) => b.capacity);
  gauge('vllm_router_backend_ttft_predicted_seconds', 'Mean time to first token the router predicted for what it sent there (30 s half-life).', (b) => b.rates.ttftPredictedS);
  gauge('vllm_router_backend_ttft_measured_seconds', 'Mean time to first token the backend reported (vllm:time_to_first_token_seconds, 30 s half-life).', (b) => b.rates.ttftMeasuredS);
  gauge('vllm_router_backend_ttft_prediction_error_ratio', 'Mean absolute error of the predicted time to first token, relative to the measured one.', (b) => b.rates.ttftError);
  gauge('vllm_router_backend_kv_events_complete', "1 while the backend's own KV events tell the router its whole cache, 0 while only part of their history is known or the stream is stale (silent while requests were routed there), absent when none are configured.", (b) =>
    b.cacheEvents === undefined ? undefined : b.cacheEvents.state === 'live' && !b.cacheEventsStale ? 1 : 0,
  );
  gauge('vllm_router_backend_kv_event_gaps', 'Sequence gaps in the backend\'s KV event stream (each replayed, or, past the replay buffer, its index rebuilt).', (b) => b.cacheEvents?.gaps);
  return { registry, decisions, rejections, decisionSeconds, upstreamResponses, promptTokenizations, flowWaitSeconds, flowShed };
}
