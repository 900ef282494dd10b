import type { Scorer } from '../types.js';

/**
 * Prefers the backend that last served the same session (a header or the OpenAI `user`
 * field). The memory is a bounded LRU; how strongly it pulls is the scorer's weight.
 */
export function createSessionAffinityScorer(maxSessions = 100_000): Scorer {
  const sessions = new Map<string, string>();
  return {
    name: 'session-affinity',
    score({ request, backends }) {
      const owner = request.sessionKey === undefined ? undefined : sessions.get(request.sessionKey);
      return backends.map((b) => (b.id === owner ? 1 : 0));
    },
    picked({ request }, backend) {
      const key = request.sessionKey;
      if (key === undefined) return;
      sessions.delete(key);
      sessions.set(key, backend.id);
      if (sessions.size > maxSessions) sessions.delete(sessions.keys().next().value!);
    },
  };
}
