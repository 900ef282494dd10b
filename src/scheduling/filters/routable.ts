import { isRoutable } from '../../fleet/backend.js';
import type { Filter } from '../types.js';

/** Keeps backends in rotation (see isRoutable) that serve the request's model. */
export const routableFilter: Filter = {
  name: 'routable',
  filter: (request, backends) => backends.filter((b) => isRoutable(b) && b.models.includes(request.model)),
};
