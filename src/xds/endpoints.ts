import { clusterNameForModel } from '../contract/envoy.js';
import type { Backend } from '../fleet/backend.js';
import { HealthStatus } from '../gen/envoy/config/core/v3/health_check.js';
import { ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint.js';

/**
 * A model's endpoints: its backends with a known address, named by backend id (Envoy's
 * hostname), marked unhealthy when the router's probes say so; Envoy's own health checks and
 * outlier detection act on top.
 */
export function modelEndpoints(model: string, backends: readonly Backend[]): ClusterLoadAssignment {
  return ClusterLoadAssignment.fromPartial({
    clusterName: clusterNameForModel(model),
    endpoints: [
      {
        lbEndpoints: backends
          .filter((b) => b.endpoint !== '')
          .map((b) => {
            const colon = b.endpoint.lastIndexOf(':');
            const ip = b.endpoint.slice(0, colon).replace(/^\[|\]$/g, '');
            return {
              hostIdentifier: {
                $case: 'endpoint' as const,
                value: {
                  address: {
                    address: {
                      $case: 'socketAddress' as const,
                      value: { address: ip, portSpecifier: { $case: 'portValue' as const, value: Number(b.endpoint.slice(colon + 1)) } },
                    },
                  },
                  hostname: b.id,
                },
              },
              healthStatus: b.health === 'unhealthy' ? HealthStatus.UNHEALTHY : HealthStatus.UNKNOWN,
            };
          }),
      },
    ],
  });
}
