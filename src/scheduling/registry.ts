import type { RouterConfig } from '../config/schema.js';
import { allowedEndpointsFilter } from './filters/allowed-endpoints.js';
import { createQueueLimitFilter } from './filters/queue-limit.js';
import { preferResponsiveFilter } from './filters/responsive.js';
import { routableFilter } from './filters/routable.js';
import type { SchedulerMemory } from './memory.js';
import { createMaxScorePicker } from './pickers/max-score.js';
import { createRandomPicker } from './pickers/random.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { createFirstTokenCostScorer } from './scorers/first-token-cost.js';
import { createLeastLoadScorer } from './scorers/least-load.js';
import { loraAffinityScorer } from './scorers/lora-affinity.js';
import { inflightScorer, kvCacheScorer, prefixMatchScorer, queueScorer, runningScorer } from './scorers/load-signals.js';
import { createSessionAffinityScorer } from './scorers/session-affinity.js';
import type { Filter, Scorer } from './types.js';

type SchedulerConfig = RouterConfig['scheduler'];
type ScorerName = SchedulerConfig['scorers'][number]['name'];

/** Every scorer a config may name, built from the scheduler's settings and its memory. */
const SCORERS: Record<ScorerName, (config: SchedulerConfig, memory: SchedulerMemory) => Scorer> = {
  'first-token-cost': (c) => createFirstTokenCostScorer(c.cost),
  'prefix-match': () => prefixMatchScorer,
  'least-load': (c) => createLeastLoadScorer(c.load),
  queue: () => queueScorer,
  running: () => runningScorer,
  'kv-cache': () => kvCacheScorer,
  inflight: () => inflightScorer,
  'session-affinity': (_c, m) => createSessionAffinityScorer(m.sessions),
  'lora-affinity': () => loraAffinityScorer,
};

/**
 * The scheduler a config describes. It holds settings only: what it learns lives in `memory`,
 * which the caller keeps across reloads.
 */
export function schedulerFromConfig(config: RouterConfig, memory: SchedulerMemory, random?: () => number): Scheduler {
  const c = config.scheduler;
  // A gateway's subset hint narrows first: a backend it did not allow is not a candidate,
  // whatever its health.
  const filters: Filter[] = [allowedEndpointsFilter, routableFilter, preferResponsiveFilter];
  if (c.maxWaitingPerBackend > 0) filters.push(createQueueLimitFilter(c.maxWaitingPerBackend));
  return createScheduler({
    filters,
    scorers: c.scorers.map(({ name, weight }) => ({ scorer: SCORERS[name](c, memory), weight })),
    picker: c.picker === 'random' ? createRandomPicker(random) : createMaxScorePicker(random),
    fallbacks: c.fallbacks,
    prefixIndex: memory.prefixIndex,
    preciseIndex: memory.preciseIndex,
    recentDispatches: memory.recentDispatches,
    adapterActivity: memory.adapterActivity,
    tokenRatio: memory.tokenRatio,
    meanUncachedPrefill: memory.meanUncachedPrefill,
    blocks: c.prefix,
  });
}
