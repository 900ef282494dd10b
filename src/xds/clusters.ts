import type { RouterConfig } from '../config/schema.js';
import { DESTINATION_HEADER, LB_METADATA_NAMESPACE, clusterNameForModel } from '../contract/envoy.js';
import { Cluster, Cluster_DiscoveryType } from '../gen/envoy/config/cluster/v3/cluster.js';
import { LeastRequest } from '../gen/envoy/extensions/load_balancing_policies/least_request/v3/least_request.js';
import { OverrideHost } from '../gen/envoy/extensions/load_balancing_policies/override_host/v3/override_host.js';
import { RoundRobin } from '../gen/envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.js';
import { HttpProtocolOptions } from '../gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { ads, ms, pack } from './encoding.js';
import { ENVOY_TUNING as T } from './envoy-tuning.js';

function fallbackPolicy(name: RouterConfig['upstream']['fallbackPolicy']) {
  if (name === 'round_robin') {
    return {
      name: 'envoy.load_balancing_policies.round_robin',
      typedConfig: pack('envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin', RoundRobin, RoundRobin.fromPartial({})),
    };
  }
  return {
    name: 'envoy.load_balancing_policies.least_request',
    typedConfig: pack(
      'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
      LeastRequest,
      LeastRequest.fromPartial({ choiceCount: T.leastRequestChoiceCount }),
    ),
  };
}

/**
 * One EDS cluster per model. The override_host policy sends each request to the endpoint the
 * router named (from `envoy.lb` metadata, which clients cannot set), then to its fallbacks on
 * retries; when the router named none, Envoy's own least-request balancing takes over.
 */
export function modelCluster(model: string, config: RouterConfig): Cluster {
  const name = clusterNameForModel(model);
  const { upstream } = config;
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ads(), serviceName: name },
    connectTimeout: ms(upstream.connectTimeoutMs),
    // A backend removed from the fleet leaves Envoy's cluster at once. By default Envoy keeps
    // a removed host that still passes its health check, and when the router is down (Envoy
    // balances by itself) it would get new requests: a server repurposed to another model
    // would be sent this one. Requests already on it finish: removal drains, it does not cut.
    ignoreHealthOnHostRemoval: true,
    loadBalancingPolicy: {
      policies: [
        {
          typedExtensionConfig: {
            name: 'envoy.load_balancing_policies.override_host',
            typedConfig: pack('envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost', OverrideHost, {
              overrideHostSources: [
                { header: '', metadata: { key: LB_METADATA_NAMESPACE, path: [{ segment: { $case: 'key', value: DESTINATION_HEADER } }] } },
              ],
              fallbackPolicy: { policies: [{ typedExtensionConfig: fallbackPolicy(upstream.fallbackPolicy) }] },
            }),
          },
        },
      ],
    },
    healthChecks: [
      {
        timeout: ms(upstream.healthCheckTimeoutMs),
        interval: ms(upstream.healthCheckIntervalMs),
        noTrafficInterval: ms(upstream.healthCheckIntervalMs),
        unhealthyThreshold: T.healthCheckUnhealthyThreshold,
        healthyThreshold: T.healthCheckHealthyThreshold,
        healthChecker: { $case: 'httpHealthCheck', value: { path: '/health' } },
      },
    ],
    circuitBreakers: {
      thresholds: [
        {
          maxConnections: T.maxConnections,
          maxPendingRequests: T.maxPendingRequests,
          maxRequests: T.maxRequests,
          retryBudget: { budgetPercent: { value: T.retryBudgetPercent }, minRetryConcurrency: T.retryBudgetMinConcurrency },
        },
      ],
    },
    outlierDetection: {
      consecutiveGatewayFailure: upstream.ejectAfterGatewayFailures,
      enforcingConsecutiveGatewayFailure: 100,
      // Only gateway failures eject: a client's 4xx never counts against a backend.
      consecutive5xx: T.consecutive5xxNever,
      enforcingConsecutive5xx: 0,
      interval: ms(T.outlierIntervalMs),
      baseEjectionTime: ms(upstream.ejectionTimeMs),
      maxEjectionPercent: T.outlierMaxEjectionPercent,
    },
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        HttpProtocolOptions,
        HttpProtocolOptions.fromPartial({
          commonHttpProtocolOptions: { idleTimeout: ms(T.upstreamIdleTimeoutMs) },
          upstreamProtocolOptions: { $case: 'explicitHttpConfig', value: { protocolConfig: { $case: 'httpProtocolOptions', value: {} } } },
        }),
      ),
    },
  });
}
