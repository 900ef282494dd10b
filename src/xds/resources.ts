import type { RouterConfig } from '../config/schema.js';
import type { Backend } from '../fleet/backend.js';
import { isRoutable } from '../fleet/fleet.js';
import { Cluster, Cluster_DiscoveryType } from '../gen/envoy/config/cluster/v3/cluster.js';
import { ApiVersion } from '../gen/envoy/config/core/v3/config_source.js';
import { HealthStatus } from '../gen/envoy/config/core/v3/health_check.js';
import { ClusterLoadAssignment } from '../gen/envoy/config/endpoint/v3/endpoint.js';
import { RouteConfiguration } from '../gen/envoy/config/route/v3/route.js';
import { FilterConfig, RetryPolicy, Route } from '../gen/envoy/config/route/v3/route_components.js';

type RouteInit = Parameters<typeof Route.fromPartial>[0];
type RetryPolicyInit = Parameters<typeof RetryPolicy.fromPartial>[0];
import { LeastRequest } from '../gen/envoy/extensions/load_balancing_policies/least_request/v3/least_request.js';
import { RoundRobin } from '../gen/envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.js';
import { OverrideHost } from '../gen/envoy/extensions/load_balancing_policies/override_host/v3/override_host.js';
import { HttpProtocolOptions } from '../gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import type { Any } from '../gen/google/protobuf/any.js';
import { NEEDS_BODY, NO_ENDPOINT, READ_METHODS, UNKNOWN_MODEL, localEndpoints, type LocalEndpoint } from '../extproc/local-endpoints.js';
import { errorBody, httpError } from '../extproc/openai-error.js';
import {
  CLUSTER_HEADER,
  DESTINATION_HEADER,
  LB_METADATA_NAMESPACE,
  ROUTER_METADATA_NAMESPACE,
  ROUTE_CONFIG_NAME,
  clusterNameForModel,
} from './names.js';

export const TYPE_URL = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  routes: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

interface Encodable<T> {
  encode(message: T): { finish(): Uint8Array };
}

export function pack<T>(typeName: string, codec: Encodable<T>, message: T): Any {
  const bytes = codec.encode(message).finish();
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

const ms = (millis: number) => ({ seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1e6 });
const ads = () => ({ configSourceSpecifier: { $case: 'ads' as const, value: {} }, resourceApiVersion: ApiVersion.V3 });

/** A named resource, encoded once, compared by bytes to detect change. */
export interface Resource {
  name: string;
  any: Any;
}

export interface Resources {
  clusters: Resource[];
  endpoints: Resource[];
  routes: Resource[];
}

/**
 * One EDS cluster per model. The override_host policy sends each request to the endpoint the
 * router named (from `envoy.lb` metadata, which clients cannot set), then to its fallbacks on
 * retries; when the router named none, Envoy's own least-request balancing takes over.
 */
function modelCluster(model: string, config: RouterConfig): Cluster {
  const name = clusterNameForModel(model);
  const { upstream } = config;
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ads(), serviceName: name },
    connectTimeout: ms(upstream.connectTimeoutMs),
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
        unhealthyThreshold: 2,
        healthyThreshold: 1,
        healthChecker: { $case: 'httpHealthCheck', value: { path: '/health' } },
      },
    ],
    // Envoy's default circuit breakers (1024 requests, 3 concurrent retries per cluster) are
    // far below what one model's fleet holds in flight, and would turn a dying backend's
    // retries into 503s. vLLM queues by itself; retries are bounded by a budget instead.
    circuitBreakers: {
      thresholds: [
        {
          maxConnections: 1_000_000,
          maxPendingRequests: 1_000_000,
          maxRequests: 1_000_000,
          retryBudget: { budgetPercent: { value: 50 }, minRetryConcurrency: 64 },
        },
      ],
    },
    outlierDetection: {
      consecutiveGatewayFailure: upstream.ejectAfterGatewayFailures,
      enforcingConsecutiveGatewayFailure: 100,
      // Only gateway failures eject: a client's 4xx never counts against a backend.
      consecutive5xx: 1_000_000,
      enforcingConsecutive5xx: 0,
      interval: ms(1_000),
      baseEjectionTime: ms(upstream.ejectionTimeMs),
      maxEjectionPercent: 50,
    },
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        HttpProtocolOptions,
        HttpProtocolOptions.fromPartial({
          commonHttpProtocolOptions: { idleTimeout: ms(60_000) },
          upstreamProtocolOptions: { $case: 'explicitHttpConfig', value: { protocolConfig: { $case: 'httpProtocolOptions', value: {} } } },
        }),
      ),
    },
  });
}

function fallbackPolicy(name: RouterConfig['upstream']['fallbackPolicy']) {
  if (name === 'round_robin') {
    return {
      name: 'envoy.load_balancing_policies.round_robin',
      typedConfig: pack('envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin', RoundRobin, RoundRobin.fromPartial({})),
    };
  }
  return {
    name: 'envoy.load_balancing_policies.least_request',
    typedConfig: pack('envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest', LeastRequest, LeastRequest.fromPartial({ choiceCount: 2 })),
  };
}

function endpointsFor(model: string, backends: readonly Backend[]): ClusterLoadAssignment {
  const name = clusterNameForModel(model);
  return ClusterLoadAssignment.fromPartial({
    clusterName: name,
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

function retryPolicy(config: RouterConfig): RetryPolicyInit {
  return {
    // Only failures before any response byte: a refused or reset connection, or a gateway
    // error. 4xx answers are the client's and are never retried.
    retryOn: 'connect-failure,refused-stream,reset,gateway-error',
    numRetries: config.upstream.retries,
    retryHostPredicate: [
      {
        name: 'envoy.retry_host_predicates.previous_hosts',
        configType: {
          $case: 'typedConfig',
          value: { typeUrl: 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate', value: Buffer.alloc(0) },
        },
      },
    ],
    hostSelectionRetryMaxAttempts: 3,
  };
}

const methodIs = (methods: readonly string[]) => ({
  name: ':method',
  headerMatchSpecifier: { $case: 'safeRegexMatch' as const, value: { regex: `^(${methods.join('|')})$` } },
});
const exactHeader = (name: string, value: string) => ({
  name,
  headerMatchSpecifier: { $case: 'stringMatch' as const, value: { matchPattern: { $case: 'exact' as const, value } } },
});
/** A header holding a decimal integer greater than `limit` (no leading zeros, as in content-length). */
const headerOver = (name: string, limit: number) => ({
  name,
  headerMatchSpecifier: { $case: 'safeRegexMatch' as const, value: { regex: greaterThanRegex(limit) } },
});

/** A regex for decimal integers greater than `n`: more digits, or as many and larger at the first difference. */
export function greaterThanRegex(n: number): string {
  const digits = String(n);
  const alternatives = [`[1-9][0-9]{${digits.length},}`];
  for (let i = 0; i < digits.length; i++) {
    const d = Number(digits[i]);
    if (d === 9) continue;
    const rest = digits.length - i - 1;
    alternatives.push(`${digits.slice(0, i)}[${d + 1}-9]${rest > 0 ? `[0-9]{${rest}}` : ''}`);
  }
  return `^(${alternatives.join('|')})$`;
}
const absentHeader = (name: string) => ({ name, headerMatchSpecifier: { $case: 'presentMatch' as const, value: false } });

/**
 * The router asks for `content-type: application/json` (a JSON body sent as a form by curl -d)
 * through metadata: with request headers skipped, Envoy drops header changes in a body reply.
 * An empty value (no such metadata) leaves the client's header alone.
 */
const contentTypeFromRouter = {
  header: { key: 'content-type', value: `%DYNAMIC_METADATA(${ROUTER_METADATA_NAMESPACE}:content-type)%` },
  appendAction: 2, // OVERWRITE_IF_EXISTS_OR_ADD
  keepEmptyValue: false,
};

/** What Envoy answers when neither the router nor the body's model chose a route. */
const ROUTER_UNAVAILABLE = {
  status: 503,
  body: errorBody(httpError(503, 'router_unavailable', 'The router could not choose a backend for this request; try again shortly.')),
};

/** A route action that answers with a fixed JSON body. */
const answer = (a: { status: number; body: string }) => ({
  action: { $case: 'directResponse' as const, value: { status: a.status, body: { specifier: { $case: 'inlineString' as const, value: a.body } } } },
  responseHeadersToAdd: [{ header: { key: 'content-type', value: 'application/json' }, appendAction: 2 }],
});

function routesFor(models: readonly string[], local: readonly LocalEndpoint[], config: RouterConfig): RouteConfiguration {
  const forward = (cluster: { $case: 'cluster' | 'clusterHeader'; value: string }) => ({
    $case: 'route' as const,
    value: { clusterSpecifier: cluster, timeout: ms(0), retryPolicy: retryPolicy(config) },
  });
  const routes: RouteInit[] = [
    {
      name: 'picked-by-router',
      match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: [{ name: CLUSTER_HEADER, headerMatchSpecifier: { $case: 'presentMatch', value: true } }] },
      action: forward({ $case: 'clusterHeader', value: CLUSTER_HEADER }),
    },
    // Used only when the router is unreachable: Envoy reads the model itself.
    ...models.map(
      (model): RouteInit => ({
        name: `model-${model}`,
        match: {
          pathSpecifier: { $case: 'prefix', value: '/' },
          dynamicMetadata: [
            {
              filter: ROUTER_METADATA_NAMESPACE,
              path: [{ segment: { $case: 'key', value: 'model' } }],
              value: { matchPattern: { $case: 'stringMatch', value: { matchPattern: { $case: 'exact', value: model } } } },
              invert: false,
            },
          ],
        },
        action: forward({ $case: 'cluster', value: clusterNameForModel(model) }),
        requestHeadersToAdd: [contentTypeFromRouter],
      }),
    ),
    // Answers without a backend, given by Envoy itself: bodiless requests never reach the router.
    ...local.flatMap((endpoint, i) =>
      endpoint.paths.map((path, j): RouteInit => ({
        name: `local-${i}-${j}`,
        match: { pathSpecifier: { $case: 'path', value: path }, headers: [methodIs(endpoint.methods)] },
        ...answer(endpoint),
      })),
    ),
    { name: 'unknown-model', match: { pathSpecifier: { $case: 'prefix', value: '/v1/models/' }, headers: [methodIs(READ_METHODS)] }, ...answer(UNKNOWN_MODEL) },
    { name: 'no-endpoint', match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: [methodIs(READ_METHODS)] }, ...answer(NO_ENDPOINT) },
    // Neither routed by the router nor by the model in a body: a request without a body.
    { name: 'needs-body', match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: [exactHeader('content-length', '0')] }, ...answer(NEEDS_BODY) },
    {
      name: 'needs-body-unsized',
      match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: [absentHeader('content-length'), absentHeader('transfer-encoding')] },
      ...answer(NEEDS_BODY),
    },
    // Chosen when the request starts, so json_to_metadata is switched off for large bodies
    // before it parses them; once the router has answered, the route is chosen again.
    {
      name: 'large-body',
      match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: [headerOver('content-length', config.upstream.failOpenMaxBodyBytes)] },
      typedPerFilterConfig: { 'envoy.filters.http.json_to_metadata': pack('envoy.config.route.v3.FilterConfig', FilterConfig, FilterConfig.fromPartial({ disabled: true })) },
      ...answer(ROUTER_UNAVAILABLE),
    },
    {
      name: 'no-route',
      match: { pathSpecifier: { $case: 'prefix', value: '/' } },
      ...answer(ROUTER_UNAVAILABLE),
    },
  ];
  return RouteConfiguration.fromPartial({
    name: ROUTE_CONFIG_NAME,
    virtualHosts: [{ name: 'vllm', domains: ['*'], routes: routes.map((r) => Route.fromPartial(r)) }],
  });
}

/** Everything Envoy needs for the current fleet, as encoded xDS resources. */
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
  const routable = models.filter((m) => byModel.get(m)!.some(isRoutable));
  return {
    clusters: models.map((m) => ({ name: clusterNameForModel(m), any: pack('envoy.config.cluster.v3.Cluster', Cluster, modelCluster(m, config)) })),
    endpoints: models.map((m) => ({
      name: clusterNameForModel(m),
      any: pack('envoy.config.endpoint.v3.ClusterLoadAssignment', ClusterLoadAssignment, endpointsFor(m, byModel.get(m)!)),
    })),
    routes: [
      {
        name: ROUTE_CONFIG_NAME,
        any: pack('envoy.config.route.v3.RouteConfiguration', RouteConfiguration, routesFor(models, localEndpoints(routable, backends.filter(isRoutable).length, version), config)),
      },
    ],
  };
}
