import type { RouterConfig } from '../config/schema.js';
import { createQueueLimitFilter } from './filters/queue-limit.js';
import { routableFilter } from './filters/routable.js';
import { createMaxScorePicker } from './pickers/max-score.js';
import { createRandomPicker } from './pickers/random.js';
import { createPrefixIndex, type PrefixIndex } from './prefix/prefix-index.js';
import { createTokenRatio, type TokenRatio } from './prefix/token-ratio.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { createFirstTokenCostScorer } from './scorers/first-token-cost.js';
import { createLeastLoadScorer } from './scorers/least-load.js';
import { inflightScorer, kvCacheScorer, prefixMatchScorer, queueScorer, runningScorer } from './scorers/load-signals.js';
import { createSessionAffinityScorer } from './scorers/session-affinity.js';
import type { Scorer } from './types.js';

type SchedulerConfig = RouterConfig['scheduler'];
type ScorerName = SchedulerConfig['scorers'][number]['name'];

/** Every scorer a config may name, built from the scheduler's settings. */
const SCORERS: Record<ScorerName, (config: SchedulerConfig) => Scorer> = {
  'first-token-cost': (c) => createFirstTokenCostScorer(c.cost),
  'prefix-match': () => prefixMatchScorer,
  'least-load': (c) => createLeastLoadScorer(c.load),
  queue: () => queueScorer,
  running: () => runningScorer,
  'kv-cache': () => kvCacheScorer,
  inflight: () => inflightScorer,
  'session-affinity': () => createSessionAffinityScorer(),
};

/** State that outlives a scheduler across config reloads. */
export interface SchedulerMemory {
  prefixIndex: PrefixIndex;
  tokenRatio: TokenRatio;
}

/** The scheduler a config describes. */
export function schedulerFromConfig(config: RouterConfig, memory: SchedulerMemory, random?: () => number): Scheduler {
  const c = config.scheduler;
  return createScheduler({
    filters: c.maxWaitingPerBackend > 0 ? [routableFilter, createQueueLimitFilter(c.maxWaitingPerBackend)] : [routableFilter],
    scorers: c.scorers.map(({ name, weight }) => ({ scorer: SCORERS[name](c), weight })),
    picker: c.picker === 'random' ? createRandomPicker(random) : createMaxScorePicker(random),
    fallbacks: c.fallbacks,
    ...memory,
    blocks: c.prefix,
  });
}

export function createSchedulerMemory(config: RouterConfig): SchedulerMemory {
  const p = config.scheduler.prefix;
  return {
    prefixIndex: createPrefixIndex(Math.ceil((p.defaultCapacityTokens * p.bytesPerToken) / p.blockBytes)),
    tokenRatio: createTokenRatio(p.bytesPerToken),
  };
}
