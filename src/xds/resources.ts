import type { RouterConfig } from '../config/schema.js';
import { localEndpoints } from '../contract/local-answers.js';
import { isRoutable, modelCards, type Backend } from '../fleet/backend.js';
import type { Cluster } from '../gen/envoy/config/cluster/v3/cluster.js';
import type { ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint.js';
import type { RouteConfiguration } from '../gen/envoy/config/route/v3/route.js';
import { modelCluster } from './clusters.js';
import { modelEndpoints } from './endpoints.js';
import { routeConfiguration } from './routes.js';

/** Everything Envoy is served, by resource type; the snapshot cache encodes and versions it. */
export interface Resources {
  clusters: Cluster[];
  endpoints: ClusterLoadAssignment[];
  routes: RouteConfiguration[];
}

/** The xDS resources for the current fleet: per model a cluster and its endpoints, and the listener's routes. */
export function buildResources(backends: readonly Backend[], config: RouterConfig, version: string): Resources {
  const byModel = new Map<string, Backend[]>();
  for (const backend of backends) {
    for (const model of backend.models) {
      let list = byModel.get(model);
      if (!list) byModel.set(model, (list = []));
      list.push(backend);
    }
  }
  const models = [...byModel.keys()].sort();
  return {
    clusters: models.map((m) => modelCluster(m, config)),
    endpoints: models.map((m) => modelEndpoints(m, byModel.get(m)!)),
    routes: [routeConfiguration(models, localEndpoints(modelCards(backends), backends.filter(isRoutable).length, version), config)],
  };
}
