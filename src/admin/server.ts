import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isRoutable, type BackendView, type FleetView, type ServiceRates } from '../fleet/backend.js';
import type { DecisionLog } from './decision-log.js';
import { DASHBOARD_HTML } from './dashboard.js';
import type { RouterMetrics } from './metrics.js';
import type { LoadWeights } from '../scheduling/load.js';
import { estimateLoad } from '../scheduling/load.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  fleet: FleetView;
  metrics: RouterMetrics;
  loadWeights: () => LoadWeights;
  decisionLog?: DecisionLog;
  /** Blocks a backend's KV events say it holds, and stored blocks not indexed (their parent never seen). */
  reportedBlocks?: (backendId: string) => { blocks: number; orphans: number };
  /** Blocks the router's own guess (the prefix index) says a backend holds. */
  guessedBlocks?: (backendId: string) => number;
  /** Per served model with a configured tokenizer: its directory and its segment cache's figures. */
  tokenizers?: () => Record<string, unknown>;
  /** Flow control: whether it is on, and the requests it holds per band and tenant. */
  flowControl?: () => unknown;
  /** The other router replicas: which are connected, and their requests counted here. */
  peers?: () => unknown;
}

type ReportedBlocks = NonNullable<AdminServerOptions['reportedBlocks']>;

const ms = (seconds: number | undefined) => (seconds === undefined ? null : Number((seconds * 1000).toFixed(3)));

/** What the router has learned of a backend's speed, in milliseconds (null: not shown yet). */
function speedFigures(r: ServiceRates) {
  return {
    stepBaseMs: ms(r.stepBaseS),
    stepPerSequenceMs: ms(r.stepPerSequenceS),
    prefillPer1kTokensMs: r.prefillPerTokenS === undefined ? null : ms(r.prefillPerTokenS * 1000),
    contendedPrefillPer1kTokensMs: r.contendedPrefillPerTokenS === undefined ? null : ms(r.contendedPrefillPerTokenS * 1000),
    slotHoldMs: ms(r.slotHoldS),
    admissionMs: ms(r.admissionS),
    frontEndMs: ms(r.frontEndS),
    outputTokens: r.outputTokens === undefined ? null : Number(r.outputTokens.toFixed(1)),
    slots: r.slots ?? null,
  };
}

/**
 * How the router knows what a backend's cache holds: `events` (its own KV events, complete),
 * `events-partial` (its events, missing history from before the replay buffer: blocks stored
 * back then count only as the guess), or `guess` (what was sent there), and why.
 */
function cacheSource(b: BackendView, now: number, reportedBlocks?: ReportedBlocks) {
  const e = b.cacheEvents;
  if (!e) return { source: 'guess', why: 'no KV events configured', events: null };
  const stale = b.cacheEventsStale && (e.state === 'live' || e.state === 'partial');
  const source = stale ? 'events-stale' : e.state === 'live' ? 'events' : e.state === 'partial' ? 'events-partial' : 'guess';
  const why =
    stale ? 'no batch while requests were routed there: events and the guess together' :
    e.state === 'live' ? 'complete event history' :
    e.state === 'partial' ? 'history before the replay buffer (or a gap it outran) is missing' :
    e.state === 'closed' ? 'event stream closed' : `event stream ${e.state}`;
  return {
    source,
    why: `${why}; for prompts in token ids, or text of a model with a configured tokenizer`,
    events: {
      state: e.state,
      stale: b.cacheEventsStale,
      lastSequence: e.lastSequence,
      lastBatchAgeMs: e.lastBatchAt === null ? null : now - e.lastBatchAt,
      batches: e.batches,
      gaps: e.gaps,
      replays: e.replays,
      restarts: e.restarts,
      malformed: e.malformed,
      lastError: e.lastError,
      ...reportedBlocks?.(b.id),
    },
  };
}

/** Per-backend load statistics, as JSON. */
export function loadStatistics(options: Pick<AdminServerOptions, 'fleet' | 'decisionLog' | 'reportedBlocks' | 'guessedBlocks' | 'tokenizers' | 'flowControl' | 'peers'> & { weights: LoadWeights }) {
  const { fleet, weights, decisionLog, reportedBlocks, guessedBlocks, tokenizers, flowControl, peers } = options;
  const now = Date.now();
  return {
    time: new Date(now).toISOString(),
    backends: fleet.backends().map((b) => ({
      id: b.id,
      url: b.url,
      endpoint: b.endpoint || null,
      models: b.models,
      health: b.health,
      routable: isRoutable(b),
      suspect: b.suspect,
      running: b.metrics?.running ?? null,
      waiting: b.metrics?.waiting ?? null,
      kvCacheUsage: b.metrics?.kvCacheUsage ?? null,
      lora: b.metrics?.lora ?? null,
      inflight: b.inflight,
      load: Number(estimateLoad(b, weights).toFixed(4)),
      prefixHitShare: b.recent.prefixHitShare === undefined ? null : Number(b.recent.prefixHitShare.toFixed(4)),
      routedPerSecond: Number(b.recent.routedPerSecond.toFixed(2)),
      routedTotal: b.routed,
      capacity: b.capacity,
      capacityFrom: b.capacityOverride !== undefined ? 'config' : b.rates.slots !== undefined ? 'learned' : 'default',
      speed: speedFigures(b.rates),
      ttft: {
        predictedMs: ms(b.rates.ttftPredictedS),
        measuredMs: ms(b.rates.ttftMeasuredS),
        error: b.rates.ttftError === undefined ? null : Number(b.rates.ttftError.toFixed(4)),
      },
      cache: { ...cacheSource(b, now, reportedBlocks), guessedBlocks: guessedBlocks?.(b.id) ?? null },
      lastScrapeAgeMs: b.lastScrapeOkAt === undefined ? null : now - b.lastScrapeOkAt,
      lastError: b.lastError ?? null,
      metricsError: b.metricsError ?? null,
    })),
    models: fleet.routableModels(),
    tokenizers: tokenizers?.() ?? {},
    flowControl: flowControl?.() ?? null,
    peers: peers?.() ?? null,
    recentDecisions: decisionLog?.recent() ?? [],
  };
}

/** The admin port: Prometheus metrics, health and load statistics. Loopback by default. */
export async function startAdminServer(options: AdminServerOptions): Promise<{ server: Server; port: number }> {
  const { fleet, metrics } = options;
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'application/json', allow: 'GET' }).end('{"error":"method not allowed"}');
      } else if (path === '/metrics') {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
      } else if (path === '/health') {
        const healthy = fleet.backends().some(isRoutable);
        res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: healthy ? 'ok' : 'no healthy backend' }));
      } else if (path === '/dashboard' || path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(DASHBOARD_HTML);
      } else if (path === '/stats' || path === '/load') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(loadStatistics({ ...options, weights: options.loadWeights() }), null, 2));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no admin endpoint ${path}; try /dashboard, /stats, /metrics or /health` }));
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
