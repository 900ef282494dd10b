import type { Filter } from '../types.js';

/**
 * Prefers backends that answer their health probes: drops suspect ones (a probe failed or is
 * overdue) while any other remains. It never refuses a request by itself: when every backend
 * is suspect, all stay, and health alone decides.
 */
export const preferResponsiveFilter: Filter = {
  name: 'prefer-responsive',
  filter: (_request, backends) => {
    const responsive = backends.filter((b) => !b.suspect);
    return responsive.length > 0 ? responsive : backends;
  },
};
