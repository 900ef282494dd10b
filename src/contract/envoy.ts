/**
 * The contract between the router and Envoy: names both sides must spell the same way in the
 * bootstrap (envoy/envoy.yaml), the resources served over xDS and the ext_proc replies.
 */
import { createHash } from 'node:crypto';

/** Route configuration name the bootstrap's listener asks for over RDS. */
export const ROUTE_CONFIG_NAME = 'vllm_routes';

/** Request header naming the model's cluster; the first route forwards on it. */
export const CLUSTER_HEADER = 'x-vllm-router-cluster';

/** Endpoint-picker header (Gateway API Inference Extension): `primary,fallback,...`. */
export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';

/** Dynamic metadata namespace Envoy's override_host policy reads the pick from. */
export const LB_METADATA_NAMESPACE = 'envoy.lb';

/** Filter metadata where a gateway may narrow the endpoints the picker may choose from. */
export const SUBSET_HINT_NAMESPACE = 'envoy.lb.subset_hint';
/** The key in that namespace: a list of `ip:port` endpoints. */
export const SUBSET_HINT_KEY = `${DESTINATION_HEADER}-subset`;

/** Headers a client might send to choose its backend; never trusted, always removed. */
export const ROUTING_HEADERS: readonly string[] = [CLUSTER_HEADER, DESTINATION_HEADER, `${DESTINATION_HEADER}-served`];

/**
 * How long Envoy waits for the router's answer to a body over the fail-open bound: such a
 * body takes longer than the usual 1 s on the wire when several arrive together, and Envoy
 * could not route it without the router anyway. The bootstrap's large-body ext_proc filter
 * has this message_timeout, and the other one allows at least this much (for bodies of
 * unknown size, which the router asks more time for once it sees how large they are).
 */
export const LARGE_BODY_MESSAGE_TIMEOUT_MS = 10_000;

/**
 * The longest the router asks Envoy to wait for a request flow control holds: the longest
 * wait it may allow (`flowControl.maxWaitMs`, at most 60 s) and a second to answer the shed.
 * Every shipped ext_proc filter allows it as max_message_timeout.
 */
export const HELD_MESSAGE_TIMEOUT_MS = 61_000;

/** The bootstrap's names for the filters that routes configure per route. */
export const FILTERS = {
  extProc: 'envoy.filters.http.ext_proc',
  /** The same processor with LARGE_BODY_MESSAGE_TIMEOUT_MS, off unless a route turns it on. */
  extProcLargeBody: 'vllm_router.ext_proc.large_body',
  jsonToMetadata: 'envoy.filters.http.json_to_metadata',
} as const;

/** Our own dynamic metadata (model lifted from the body; routes match on it). */
export const ROUTER_METADATA_NAMESPACE = 'vllm.router';

/**
 * One Envoy cluster per model. Model names may hold characters that Envoy stat names treat
 * specially ('/' and '.'), so they are folded, and a short hash keeps folded names distinct.
 */
export function clusterNameForModel(model: string): string {
  const folded = model.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80);
  if (folded === model) return `model_${model}`;
  return `model_${folded}_${createHash('sha256').update(model).digest('hex').slice(0, 8)}`;
}

/**
 * What Envoy's request_attributes carry when it skips the request headers message (as the
 * repo's bootstrap does, saving a round trip per request): the bootstrap lists these
 * expressions, and the router reads them back by the same names.
 */
export const REQUEST_ATTRIBUTES = {
  method: 'request.method',
  path: 'request.url_path',
  contentType: "request.headers['content-type']",
  contentEncoding: "request.headers['content-encoding']",
} as const;

/** The attribute expression for one more request header (e.g. a session header). */
export const headerAttribute = (name: string) => `request.headers['${name}']`;
