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
