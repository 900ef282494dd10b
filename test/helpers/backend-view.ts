import type { BackendView } from '../../src/fleet/backend.js';
import { emptyServiceRates } from '../../src/fleet/service-rates.js';
import { NO_HISTOGRAMS, type VllmLoad } from '../../src/fleet/vllm-metrics.js';

/** One scrape of an idle-looking vLLM server with `running` and `waiting` requests; no counters or histograms. */
export function vllmLoad(running: number, waiting: number, over: Partial<VllmLoad> = {}): VllmLoad {
  return {
    running,
    waiting,
    kvCacheUsage: 0,
    prefixCacheQueries: undefined,
    prefixCacheHits: undefined,
    promptTokensTotal: undefined,
    requestsCompleted: undefined,
    generationTokensTotal: undefined,
    waitingForCapacity: undefined,
    histograms: NO_HISTOGRAMS,
    stepTokenBuckets: undefined,
    blockSize: 16,
    numGpuBlocks: 100_000,
    modelNames: [],
    lora: undefined,
    ...over,
  };
}

export type MutableBackendView = { -readonly [K in keyof BackendView]: BackendView[K] };

/** A healthy backend serving model `m` with 8 slots, idle, nothing learned of its speed yet. */
export function backendView(id: string, over: Partial<BackendView> = {}): MutableBackendView {
  return {
    id,
    endpoint: `10.0.0.${id.charCodeAt(0)}:8000`,
    models: ['m'],
    health: 'healthy',
    capacity: 8,
    metrics: vllmLoad(0, 0),
    inflight: 0,
    unseenDispatches: 0,
    unseenFinishes: 0,
    lastingExcess: 0,
    endedPromptBytesAtRead: 0,
    queueing: false,
    suspect: false,
    recent: { prefixHitShare: undefined, othersShare: undefined },
    rates: emptyServiceRates(),
    cacheEvents: undefined,
    cacheEventsStale: false,
    predictedTtft: [],
    ...over,
  };
}
