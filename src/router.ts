import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import { createDecisionLog } from './admin/decision-log.js';
import { createRouterMetrics } from './admin/metrics.js';
import { startAdminServer } from './admin/server.js';
import type { RouterConfig } from './config/schema.js';
import { createInflightRequests } from './extproc/inflight-requests.js';
import { createLargeBodyBudget } from './extproc/large-body-budget.js';
import { createProcessor } from './extproc/processor.js';
import { createFlowController } from './flow-control/flow-controller.js';
import { createFleet, type Fleet } from './fleet/fleet.js';
import { AggregatedDiscoveryServiceService } from './gen/envoy/service/discovery/v3/ads.js';
import { DiscoveryRequest, DiscoveryResponse } from './gen/envoy/service/discovery/v3/discovery.js';
import { ExternalProcessorService, ProcessingRequest, ProcessingResponse } from './gen/envoy/service/ext_proc/v3/external_processor.js';
import { GrpcStatus, startGrpcServer, type GrpcServer, type StreamingMethod } from './grpc/server.js';
import type { Logger } from './support/log.js';
import { createSchedulerMemory } from './scheduling/memory.js';
import { loadTokenizerSet } from './tokenize/tokenizer-set.js';
import { schedulerFromConfig } from './scheduling/registry.js';
import { createPeerSync } from './peers/peer-sync.js';
import { createHealthService } from './grpc/health.js';
import { rememberRouted } from './scheduling/scheduler.js';
import { createAdsHandler } from './xds/ads-server.js';
import { buildResources } from './xds/resources.js';
import { createSnapshotCache } from './xds/snapshot-cache.js';

/** Longest a closing replica waits for Envoy's health checker to hear it is going (its interval is 1 s in envoy/envoy.yaml). */
const HANDOVER_MAX_MS = 2_000;

export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export interface Router {
  grpcPort: number;
  adminPort: number;
  fleet: Fleet;
  config(): RouterConfig;
  /** Applies a new, already validated config atomically. */
  applyConfig(config: RouterConfig): void;
  /**
   * Answers health checks NOT_SERVING until one has heard it (a standby then takes the new
   * streams), ends Envoy's xDS stream, stops taking new streams, lets open ones finish, then
   * closes: `graceMs` in all.
   */
  close(graceMs?: number): Promise<void>;
}

/** Builds the control plane from a config and starts its gRPC and admin servers. */
export async function startRouter(initial: RouterConfig, logger: Logger): Promise<Router> {
  let config = initial;
  const memory = createSchedulerMemory(config);
  let scheduler = schedulerFromConfig(config, memory);
  let tokenizers = loadTokenizerSet(config.tokenizers);
  const fleet = createFleet({
    config,
    logger,
    kvEventSink: (id) => {
      // The ranks this publisher spoke for (its batches say): what its reset voids.
      const ranks = new Set<number>();
      return {
        apply: (rank, events) => {
          ranks.add(rank);
          for (const event of events) memory.preciseIndex.apply(id, rank, event);
        },
        reset: () => {
          for (const rank of ranks) memory.preciseIndex.clear(id, rank);
          ranks.clear();
        },
      };
    },
  });
  const flow = createFlowController({
    config: () => config.flowControl,
    candidates: (model) => fleet.servingModel(model),
    onError: (err) => logger.error('a request let go by flow control failed', { error: err }),
    observer: {
      ended(request, end) {
        metrics.flowWaitSeconds.observe({ outcome: end.kind === 'release' ? 'released' : 'shed' }, end.waitedMs / 1000);
        if (end.kind === 'shed') metrics.flowShed.inc({ reason: end.reason, priority: String(request.priority) });
      },
    },
  });
  const metrics = createRouterMetrics(fleet, () => flow.stats().bands);
  const peers = createPeerSync({
    instance: randomUUID(),
    addresses: () => config.peers.addresses,
    fleet,
    remember: (backend, routed) => rememberRouted(memory, backend, routed, Date.now()),
    cacheViews: () => fleet.backends().map((b) => ({ backend: b.id, hashes: memory.prefixIndex.blocks(b.id) })),
    absorbCacheView: (backend, hashes) => memory.prefixIndex.absorb(backend.id, hashes),
    logger,
  });
  const cache = createSnapshotCache();
  const decisionLog = createDecisionLog();
  const publish = () => {
    try {
      const changed = cache.set(buildResources(fleet.backends(), config, VERSION));
      if (changed.length > 0) logger.debug('xds snapshot', { changed: changed.map((t) => t.split('.').pop()) });
    } catch (err) {
      // Envoy keeps the last consistent snapshot; this one is a bug to report, not to serve.
      logger.error('xds snapshot not published', { error: err as Error });
    }
  };
  fleet.onChange(publish);
  fleet.onChange(() => memory.retain(new Set(fleet.backends().map((b) => b.id))));
  // Requests held by a backend that stopped answering end now, not when (if ever) it recovers.
  // Not those of one that refuses or resets: Envoy has retried them elsewhere.
  const inflight = createInflightRequests();
  const largeBodies = createLargeBodyBudget();
  fleet.onChange(() => {
    for (const b of fleet.backends()) {
      if (b.health !== 'unhealthy' || !b.stoppedAnswering) continue;
      const ended = inflight.endAll(b.id);
      if (ended > 0) logger.warn('ended the requests in flight on a backend that stopped answering', { backend: b.id, requests: ended });
    }
  });

  const ads = createAdsHandler(cache, logger);
  const served: ReadonlyArray<StreamingMethod<any, any>> = [
    {
      path: ExternalProcessorService.process.path,
      requests: ProcessingRequest,
      responses: ProcessingResponse,
      handler: createProcessor({ fleet, scheduler: () => scheduler, config: () => config, metrics, logger, version: VERSION, decisionLog, inflight, largeBodies, tokenizers: () => tokenizers, flow, peers }),
    },
    peers.method,
    {
      path: AggregatedDiscoveryServiceService.streamAggregatedResources.path,
      requests: DiscoveryRequest,
      responses: DiscoveryResponse,
      handler: ads,
    },
    {
      path: AggregatedDiscoveryServiceService.deltaAggregatedResources.path,
      requests: DiscoveryRequest,
      responses: DiscoveryResponse,
      handler: (call) => call.destroy(Object.assign(new Error('delta xDS is not supported; use state-of-the-world ADS'), { code: GrpcStatus.UNIMPLEMENTED })),
    },
  ];
  const health = createHealthService(served.map((m) => m.path));
  let grpcServer: GrpcServer;
  try {
    grpcServer = await startGrpcServer({
      host: config.grpc.host,
      port: config.grpc.port,
      maxMessageBytes: 64 * 1024 * 1024,
      methods: [...served, health.method],
    });
  } catch (err) {
    throw new Error(`cannot listen for gRPC on ${config.grpc.host}:${config.grpc.port}: ${(err as Error).message}`);
  }
  const grpcPort = grpcServer.port;

  let admin: { server: Server; port: number };
  try {
    admin = await startAdminServer({
      host: config.admin.host,
      port: config.admin.port,
      fleet,
      metrics,
      loadWeights: () => config.scheduler.load,
      decisionLog,
      reportedBlocks: (id) => memory.preciseIndex.stats(id),
      guessedBlocks: (id) => memory.prefixIndex.size(id),
      tokenizers: () => tokenizers.stats(),
      flowControl: () => flow.stats(),
      peers: () => peers.stats(),
    });
  } catch (err) {
    await grpcServer.close(0);
    throw new Error(`cannot listen for admin HTTP on ${config.admin.host}:${config.admin.port}: ${(err as Error).message}`);
  }

  publish();
  fleet.start();
  peers.reconcile();
  logger.info('router started', { grpc: `${config.grpc.host}:${grpcPort}`, admin: `${config.admin.host}:${admin.port}`, backends: config.backends.length });

  return {
    grpcPort,
    adminPort: admin.port,
    fleet,
    config: () => config,
    applyConfig(next) {
      if (next.grpc.port !== config.grpc.port || next.grpc.host !== config.grpc.host || next.admin.port !== config.admin.port || next.admin.host !== config.admin.host) {
        logger.warn('listener addresses changed in the config; they take effect on restart');
      }
      const nextScheduler = schedulerFromConfig(next, memory);
      const nextTokenizers = loadTokenizerSet(next.tokenizers, tokenizers);
      config = next;
      scheduler = nextScheduler;
      tokenizers = nextTokenizers;
      fleet.apply(next);
      peers.reconcile();
      publish();
      logger.info('config applied', { backends: next.backends.length });
    },
    async close(graceMs = 5_000) {
      // A standby replica takes the new streams before this one stops accepting them.
      const closing = Date.now();
      await health.drain(Math.min(graceMs, HANDOVER_MAX_MS));
      ads.endAll();
      fleet.stop();
      flow.stop();
      peers.close();
      admin.server.closeAllConnections();
      await new Promise<void>((resolve) => admin.server.close(() => resolve()));
      await grpcServer.close(Math.max(0, graceMs - (Date.now() - closing)));
    },
  };
}
