import type { Filter } from '../types.js';

/**
 * Keeps only the endpoints a gateway allowed for this request (the endpoint-picker protocol's
 * subset hint): the pick comes from its list or not at all. Without a hint, keeps everything.
 */
export const allowedEndpointsFilter: Filter = {
  name: 'allowed-endpoints',
  filter: (request, backends) => {
    const allowed = request.allowedEndpoints;
    return allowed ? backends.filter((b) => allowed.has(b.endpoint)) : backends;
  },
  rejection: (request) => ({ code: 'no_eligible_endpoint', model: request.model }),
};
