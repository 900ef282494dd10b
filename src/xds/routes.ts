import type { RouterConfig } from '../config/schema.js';
import {
  CLUSTER_HEADER,
  FILTERS,
  ROUTER_METADATA_NAMESPACE,
  ROUTE_CONFIG_NAME,
  clusterNameForModel,
} from '../contract/envoy.js';
import { apiError, errorBody } from '../contract/errors.js';
import { NEEDS_BODY, NOT_PUBLIC, NO_ENDPOINT, READ_METHODS, UNKNOWN_MODEL, type LocalEndpoint } from '../contract/local-answers.js';
import { exactPathsRegex } from '../contract/public-api.js';
import { HeaderValueOption_HeaderAppendAction } from '../gen/envoy/config/core/v3/base.js';
import { RouteConfiguration } from '../gen/envoy/config/route/v3/route.js';
import { FilterConfig, RetryPolicy, Route } from '../gen/envoy/config/route/v3/route_components.js';
import { ExtProcPerRoute } from '../gen/envoy/extensions/filters/http/ext_proc/v3/ext_proc.js';
import { ms, pack } from './encoding.js';
import { ENVOY_TUNING } from './envoy-tuning.js';

type RouteInit = Parameters<typeof Route.fromPartial>[0];
type RetryPolicyInit = Parameters<typeof RetryPolicy.fromPartial>[0];

const OVERWRITE = HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD;

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
    hostSelectionRetryMaxAttempts: ENVOY_TUNING.hostSelectionRetryMaxAttempts,
  };
}

/** A header whose whole value matches `regex` (string_match with safe_regex: the current field, not the deprecated safe_regex_match). */
const headerMatches = (name: string, regex: string) => ({
  name,
  headerMatchSpecifier: { $case: 'stringMatch' as const, value: { matchPattern: { $case: 'safeRegex' as const, value: { regex } } } },
});
const methodIs = (methods: readonly string[]) => headerMatches(':method', `^(${methods.join('|')})$`);
const exactHeader = (name: string, value: string) => ({
  name,
  headerMatchSpecifier: { $case: 'stringMatch' as const, value: { matchPattern: { $case: 'exact' as const, value } } },
});
/** A header holding a decimal integer greater than `limit` (no leading zeros, as in content-length). */
const headerOver = (name: string, limit: number) => headerMatches(name, greaterThanRegex(limit));
const absentHeader = (name: string) => ({ name, headerMatchSpecifier: { $case: 'presentMatch' as const, value: false } });

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

/**
 * The router asks for `content-type: application/json` (a JSON body sent as a form by curl -d)
 * through metadata: with request headers skipped, Envoy drops header changes in a body reply.
 * An empty value (no such metadata) leaves the client's header alone.
 */
const contentTypeFromRouter = {
  header: { key: 'content-type', value: `%DYNAMIC_METADATA(${ROUTER_METADATA_NAMESPACE}:content-type)%` },
  appendAction: OVERWRITE,
  keepEmptyValue: false,
};

/** Envoy's default bound on a route's fixed answer (RouteConfiguration.max_direct_response_body_size_bytes). */
const DEFAULT_DIRECT_RESPONSE_LIMIT = 4096;

/** What Envoy answers when neither the router nor the body's model chose a route. */
const ROUTER_UNAVAILABLE = { status: 503, body: errorBody(apiError('router_unavailable')) };

/** Per-route configs that turn a filter of the listener's chain off, or an ext_proc filter on, for the requests a route matches first. */
const filterOff = pack('envoy.config.route.v3.FilterConfig', FilterConfig, FilterConfig.fromPartial({ disabled: true }));
const extProcOn = pack('envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute', ExtProcPerRoute, ExtProcPerRoute.fromPartial({ override: { $case: 'overrides', value: {} } }));

/** A route action that answers with a fixed JSON body. */
const answer = (a: { status: number; body: string }) => ({
  action: { $case: 'directResponse' as const, value: { status: a.status, body: { specifier: { $case: 'inlineString' as const, value: a.body } } } },
  responseHeadersToAdd: [{ header: { key: 'content-type', value: 'application/json' }, appendAction: OVERWRITE }],
});

/**
 * The listener's routes, in order: the router's pick (by cluster header), the fail-open
 * per-model routes (by the model Envoy lifts from the body when the router did not answer),
 * the answers that need no backend, and the errors for everything else.
 */
export function routeConfiguration(models: readonly string[], local: readonly LocalEndpoint[], config: RouterConfig): RouteConfiguration {
  // Only the public API (config `api.paths`) is forwarded, routed by the router or not.
  const publicPath = { $case: 'safeRegex' as const, value: { regex: exactPathsRegex(config.api.paths) } };
  const forward = (cluster: { $case: 'cluster' | 'clusterHeader'; value: string }) => ({
    $case: 'route' as const,
    value: { clusterSpecifier: cluster, timeout: ms(0), retryPolicy: retryPolicy(config) },
  });
  const routes: RouteInit[] = [
    {
      name: 'picked-by-router',
      match: { pathSpecifier: publicPath, headers: [{ name: CLUSTER_HEADER, headerMatchSpecifier: { $case: 'presentMatch', value: true } }] },
      action: forward({ $case: 'clusterHeader', value: CLUSTER_HEADER }),
    },
    // Used only when the router is unreachable: Envoy reads the model itself.
    ...models.map(
      (model): RouteInit => ({
        name: `model-${model}`,
        match: {
          pathSpecifier: publicPath,
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
    { name: 'needs-body', match: { pathSpecifier: publicPath, headers: [exactHeader('content-length', '0')] }, ...answer(NEEDS_BODY) },
    {
      name: 'needs-body-unsized',
      match: { pathSpecifier: publicPath, headers: [absentHeader('content-length'), absentHeader('transfer-encoding')] },
      ...answer(NEEDS_BODY),
    },
    // Chosen when the request starts, so it sets the filters a large body passes through:
    // the ext_proc filter that asks the router to admit it (upstream.largeBodyBudgetBytes)
    // and waits long enough for it (LARGE_BODY_MESSAGE_TIMEOUT_MS), and no json_to_metadata.
    // Once the router has answered, the route is chosen again.
    {
      name: 'large-body',
      match: { pathSpecifier: publicPath, headers: [headerOver('content-length', config.upstream.failOpenMaxBodyBytes)] },
      typedPerFilterConfig: { [FILTERS.extProc]: filterOff, [FILTERS.extProcLargeBody]: extProcOn, [FILTERS.jsonToMetadata]: filterOff },
      ...answer(ROUTER_UNAVAILABLE),
    },
    { name: 'no-route', match: { pathSpecifier: publicPath }, ...answer(ROUTER_UNAVAILABLE) },
    // Whatever else a backend may serve (server control, profiling, adapters) is not public.
    { name: 'not-public', match: { pathSpecifier: { $case: 'prefix', value: '/' } }, ...answer(NOT_PUBLIC) },
  ];
  // Envoy refuses a route table whose fixed answers exceed 4 KiB unless told otherwise: a
  // /v1/models listing a few dozen models and adapters is larger than that.
  const largestAnswer = Math.max(0, ...local.map((l) => Buffer.byteLength(l.body)));
  return RouteConfiguration.fromPartial({
    name: ROUTE_CONFIG_NAME,
    virtualHosts: [{ name: 'vllm', domains: ['*'], routes: routes.map((r) => Route.fromPartial(r)) }],
    ...(largestAnswer > DEFAULT_DIRECT_RESPONSE_LIMIT ? { maxDirectResponseBodySizeBytes: largestAnswer } : {}),
  });
}
