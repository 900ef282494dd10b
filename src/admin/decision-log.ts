import type { DecisionReason } from '../scheduling/types.js';

export interface LoggedDecision extends DecisionReason {
  /** Date.now() when decided; formatted only when read, off the request path. */
  at: number;
  model: string;
  backend: string;
  fallbacks: string[];
}

/** The last few routing decisions and why, for the operator's view. Fixed size. */
export function createDecisionLog(size = 20) {
  const entries: LoggedDecision[] = [];
  return {
    add(entry: LoggedDecision): void {
      entries.push(entry);
      if (entries.length > size) entries.shift();
    },
    /** Newest first, with an ISO `time`. */
    recent: () => entries.map(({ at, ...rest }) => ({ time: new Date(at).toISOString(), ...rest })).reverse(),
  };
}

export type DecisionLog = ReturnType<typeof createDecisionLog>;
