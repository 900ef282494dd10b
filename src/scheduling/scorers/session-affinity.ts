import type { SessionTable } from '../memory.js';
import type { Scorer } from '../types.js';

/**
 * Prefers the backend that last served the same session (a header or the OpenAI `user`
 * field). The table is the scheduler's memory, so sessions survive config reloads; how
 * strongly it pulls is the scorer's weight.
 */
export function createSessionAffinityScorer(sessions: SessionTable): Scorer {
  return {
    name: 'session-affinity',
    score({ request, backends }) {
      const owner = request.sessionKey === undefined ? undefined : sessions.owner(request.sessionKey);
      return backends.map((b) => (b.id === owner ? 1 : 0));
    },
    picked({ request }, backend) {
      if (request.sessionKey !== undefined) sessions.assign(request.sessionKey, backend.id);
    },
  };
}
