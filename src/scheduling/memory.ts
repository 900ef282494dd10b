import type { RouterConfig } from '../config/schema.js';
import { createPrefixIndex, type PrefixIndex } from './prefix/prefix-index.js';
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

/** State that outlives a scheduler across config reloads. */
export interface SchedulerMemory {
  readonly prefixIndex: PrefixIndex;
  readonly tokenRatio: TokenRatio;
  /** Forgets backends no longer in the fleet. */
  retain(keep: ReadonlySet<string>): void;
}

export function createSchedulerMemory(config: RouterConfig): SchedulerMemory {
  const p = config.scheduler.prefix;
  const prefixIndex = createPrefixIndex(Math.ceil((p.defaultCapacityTokens * p.bytesPerToken) / p.blockBytes));
  return {
    prefixIndex,
    tokenRatio: createTokenRatio(p.bytesPerToken),
    retain: (keep) => prefixIndex.retain(keep),
  };
}
