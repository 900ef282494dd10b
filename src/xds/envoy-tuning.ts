/**
 * Envoy's numbers that the router sets on every model's cluster and route and that the config
 * does not expose, in one place, each with why. (What the config does expose, timeouts,
 * retries, health-check intervals and ejection, is read from `upstream`.)
 */
export const ENVOY_TUNING = {
  /**
   * Circuit breakers: Envoy's defaults (1024 requests, 3 concurrent retries per cluster) are
   * far below what one model's fleet holds in flight, and would turn a dying backend's retries
   * into 503s. vLLM queues by itself, so these are effectively off.
   */
  maxConnections: 1_000_000,
  maxPendingRequests: 1_000_000,
  maxRequests: 1_000_000,
  /** Retries are bounded by a budget instead: at most half the active requests retrying, at least 64. */
  retryBudgetPercent: 50,
  retryBudgetMinConcurrency: 64,
  /** Active health checks: out after two failed /health checks, back after one good one. */
  healthCheckUnhealthyThreshold: 2,
  healthCheckHealthyThreshold: 1,
  /** Outlier detection sweeps every second and ejects at most half a model's backends, so a bad push of config cannot empty a cluster. */
  outlierIntervalMs: 1_000,
  outlierMaxEjectionPercent: 50,
  /** A count of plain 5xx that is never reached: a client's bad request must never eject a backend (gateway failures do). */
  consecutive5xxNever: 1_000_000,
  /** Upstream connections idle this long are closed; generations stream for minutes but never sit idle that long. */
  upstreamIdleTimeoutMs: 60_000,
  /** Retries choose a host not tried before; this many attempts to find one. */
  hostSelectionRetryMaxAttempts: 3,
  /** Envoy's fallback least-request balancing compares this many random hosts (its default, power of two choices). */
  leastRequestChoiceCount: 2,
} as const;
