import { ROUTE_CONFIG_NAME } from '../contract/envoy.js';
import type { Resources } from './resources.js';

/**
 * What would make Envoy's view of a snapshot self-contradictory, as go-control-plane's
 * Snapshot.Consistent() checks: every EDS cluster has its endpoints, every endpoint set
 * belongs to a cluster, every route forwards to a cluster that exists, names are unique, and
 * the route configuration is the one the bootstrap asks for. Empty when consistent.
 */
export function inconsistencies(resources: Resources): string[] {
  const problems: string[] = [];
  const unique = (kind: string, names: string[]) => {
    const seen = new Set<string>();
    for (const name of names) {
      if (seen.has(name)) problems.push(`${kind} '${name}' is defined twice`);
      seen.add(name);
    }
    return seen;
  };
  const clusters = unique('cluster', resources.clusters.map((c) => c.name));
  const endpointSets = unique('endpoints', resources.endpoints.map((e) => e.clusterName));
  unique('route configuration', resources.routes.map((r) => r.name));

  const served = new Set<string>();
  for (const cluster of resources.clusters) {
    if (cluster.edsClusterConfig === undefined) continue;
    const serviceName = cluster.edsClusterConfig.serviceName || cluster.name;
    served.add(serviceName);
    if (!endpointSets.has(serviceName)) problems.push(`cluster '${cluster.name}' reads endpoints '${serviceName}', which are not in the snapshot`);
  }
  for (const name of endpointSets) if (!served.has(name)) problems.push(`endpoints '${name}' belong to no cluster`);

  for (const config of resources.routes) {
    if (config.name !== ROUTE_CONFIG_NAME) problems.push(`route configuration '${config.name}' is not the one the bootstrap asks for ('${ROUTE_CONFIG_NAME}')`);
    for (const host of config.virtualHosts) {
      for (const route of host.routes) {
        const target = route.action?.$case === 'route' ? route.action.value.clusterSpecifier : undefined;
        // A cluster named by header is chosen per request (by the router) and cannot be checked here.
        if (target?.$case === 'cluster' && !clusters.has(target.value)) {
          problems.push(`route '${route.name}' forwards to cluster '${target.value}', which is not in the snapshot`);
        }
      }
    }
  }
  return problems;
}
