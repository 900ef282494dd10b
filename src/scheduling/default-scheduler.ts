import type { RouterConfig } from '../config/schema.js';
import { routableFilter } from './filters/routable.js';
import { createMaxScorePicker } from './pickers/max-score.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { createLeastLoadScorer } from './scorers/least-load.js';

/** The scheduler the config asks for. */
export function schedulerFromConfig(config: RouterConfig, random?: () => number): Scheduler {
  const { fallbacks, waitingWeight, kvCacheWeight } = config.routing;
  return createScheduler({
    filters: [routableFilter],
    scorers: [{ scorer: createLeastLoadScorer({ waitingWeight, kvCacheWeight }), weight: 1 }],
    picker: createMaxScorePicker(random),
    fallbacks,
  });
}
