import { z } from 'zod';

/** How the router reads each backend's state (the metrics refresher). */
export const scrapingSchema = z
  .object({
    /** How often each backend's /health and /metrics are read. */
    intervalMs: z.number().int().min(20).max(60_000).default(200),
    /**
     * How often they are read while this router routes nothing (for as long): a standby
     * replica, a quiet fleet. Each read costs the server (about 8 ms of a real vLLM API
     * server's CPU), and every replica reads every server. The first request after it reads
     * them all again at once, and intervalMs holds from then on. Five times intervalMs unless
     * given (1 s); one below intervalMs counts as intervalMs.
     */
    idleIntervalMs: z.number().int().min(20).max(300_000).optional(),
    timeoutMs: z.number().int().min(10).max(60_000).default(1_000),
    /** After this long without a successful scrape, the backend's metrics are ignored. */
    staleAfterMs: z.number().int().min(50).default(2_000),
    /**
     * Consecutive failed /health probes before a backend leaves rotation. Requests still in
     * flight on it then end with 503 backend_unresponsive: with the defaults, within about
     * 3 s of its last answer (unhealthyAfterFailures x timeoutMs).
     */
    unhealthyAfterFailures: z.number().int().min(1).max(100).default(3),
    /**
     * A /health probe unanswered this long (or one that failed) makes a backend suspect: new
     * requests go to the others while any is not suspect. Its next good answer clears it. A
     * backend whose answers have lately taken longer gets twice its slowest, up to timeoutMs.
     */
    suspectAfterMs: z.number().int().min(10).max(60_000).default(500),
    /** How often /v1/models is re-read for backends whose models are not configured. */
    modelsRefreshMs: z.number().int().min(100).default(10_000),
  })
  .strict()
  .default({ intervalMs: 200, timeoutMs: 1_000, staleAfterMs: 2_000, unhealthyAfterFailures: 3, suspectAfterMs: 500, modelsRefreshMs: 10_000 });
