import type { RouterConfig } from '../config/schema.js';
import { createAdapterActivity, type AdapterActivity } from './adapters.js';
import { createPreciseIndex, type PreciseIndex } from './prefix/precise-index.js';
import { createPrefixIndex, type PrefixIndex } from './prefix/prefix-index.js';
import { createRecentDispatches, type RecentDispatches } from './prefix/recent-dispatches.js';
import { createTokenRatio, type TokenRatio } from './prefix/token-ratio.js';

/** Which backend last served each session: a bounded LRU, oldest session forgotten first. */
export interface SessionTable {
  owner(session: string): string | undefined;
  assign(session: string, backend: string): void;
}

export function createSessionTable(maxSessions = 100_000): SessionTable {
  const sessions = new Map<string, string>();
  return {
    owner: (session) => sessions.get(session),
    assign(session, backend) {
      sessions.delete(session);
      sessions.set(session, backend);
      if (sessions.size > maxSessions) sessions.delete(sessions.keys().next().value!);
    },
  };
}

/**
 * Everything the scheduler learns from the requests it routes, in one place, so that a config
 * reload (which builds a new scheduler from the new settings) forgets none of it: which prompt
 * blocks each backend holds, its bytes per token, which backend each session is on, the mean
 * uncached prefill of what each backend was sent.
 */
export interface SchedulerMemory {
  readonly prefixIndex: PrefixIndex;
  /** What backends that publish KV events say their caches hold. */
  readonly preciseIndex: PreciseIndex;
  /** Prompts routed to each backend whose blocks its events may not report yet. */
  readonly recentDispatches: RecentDispatches;
  /** LoRA adapters sent to each backend lately. */
  readonly adapterActivity: AdapterActivity;
  readonly tokenRatio: TokenRatio;
  readonly sessions: SessionTable;
  /** Per backend id: mean uncached prompt tokens of the requests routed there. */
  readonly meanUncachedPrefill: Map<string, number>;
  /** Forgets backends no longer in the fleet. */
  retain(keep: ReadonlySet<string>): void;
}

export function createSchedulerMemory(config: RouterConfig): SchedulerMemory {
  const p = config.scheduler.prefix;
  const prefixIndex = createPrefixIndex(Math.ceil((p.defaultCapacityTokens * p.bytesPerToken) / p.blockBytes));
  const meanUncachedPrefill = new Map<string, number>();
  const preciseIndex = createPreciseIndex();
  const recentDispatches = createRecentDispatches();
  const adapterActivity = createAdapterActivity();
  return {
    prefixIndex,
    preciseIndex,
    recentDispatches,
    adapterActivity,
    tokenRatio: createTokenRatio(p.bytesPerToken),
    sessions: createSessionTable(),
    meanUncachedPrefill,
    retain(keep) {
      prefixIndex.retain(keep);
      preciseIndex.retain(keep);
      recentDispatches.retain(keep);
      adapterActivity.retain(keep);
      for (const id of meanUncachedPrefill.keys()) if (!keep.has(id)) meanUncachedPrefill.delete(id);
    },
  };
}
