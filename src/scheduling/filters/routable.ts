import type { Filter } from '../types.js';

/** Keeps backends that serve the model, are not unhealthy and have a known endpoint. */
export const routableFilter: Filter = {
  name: 'routable',
  filter: (request, backends) =>
    backends.filter((b) => b.health !== 'unhealthy' && b.endpoint !== '' && b.models.includes(request.model)),
};
