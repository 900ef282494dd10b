import type { Fleet } from '../fleet/fleet.js';
import { isRoutable } from '../fleet/fleet.js';
import { errorBody, httpError, type HttpError } from './openai-error.js';

/**
 * Answers that need no backend: the fleet seen as one vLLM server. One table serves two
 * places: Envoy answers these from routes (xds/resources.ts), so requests without a body never
 * reach the router; an Envoy that sends request headers to the router (a mesh gateway) gets the
 * same answers from the router itself (answerLocally).
 */
export interface LocalEndpoint {
  /** Exact request paths (a model id with reserved characters also in percent-encoded form). */
  paths: string[];
  methods: readonly string[];
  status: number;
  /** JSON. */
  body: string;
}

const STARTED = Math.floor(Date.now() / 1000);
/** Methods that only read: answered locally, or 404 when no endpoint has the path. */
export const READ_METHODS: readonly string[] = ['GET', 'HEAD'];

const modelCard = (id: string) => ({ id, object: 'model', created: STARTED, owned_by: 'vllm', root: id, parent: null });
const error = (e: HttpError) => ({ status: e.status, body: errorBody(e) });

/** GET of a path under /v1/models/ that names no served model. */
export const UNKNOWN_MODEL = error(httpError(404, 'model_not_found', 'No model of that name is served; GET /v1/models lists them.', 'model'));
/** GET of any other path this API does not have. */
export const NO_ENDPOINT = error(httpError(404, 'not_found', 'No endpoint answers GET on this path.'));
/** A request to an inference path that carries no body. */
export const NEEDS_BODY = error(httpError(400, 'invalid_request_body', 'This request needs a JSON body.'));

export function localEndpoints(models: readonly string[], routableBackends: number, version: string): LocalEndpoint[] {
  const health =
    routableBackends > 0 ? { status: 200, body: JSON.stringify({ status: 'ok', backends: routableBackends }) } : error(httpError(503, 'no_healthy_backend', 'No backend is healthy.'));
  return [
    { paths: ['/v1/models'], methods: READ_METHODS, status: 200, body: JSON.stringify({ object: 'list', data: models.map(modelCard) }) },
    ...models.map((id) => ({ paths: [...new Set([`/v1/models/${id}`, `/v1/models/${encodeURIComponent(id)}`])], methods: READ_METHODS, status: 200, body: JSON.stringify(modelCard(id)) })),
    // vLLM answers POST /ping too (SageMaker's health check).
    { paths: ['/health', '/ping'], methods: [...READ_METHODS, 'POST'], ...health },
    { paths: ['/version'], methods: READ_METHODS, status: 200, body: JSON.stringify({ version }) },
    {
      paths: ['/metrics'],
      methods: READ_METHODS,
      ...error(httpError(404, 'not_found', "The router's metrics are served on its admin port (/metrics there); backends' metrics are scraped by the router.")),
    },
  ];
}

/** The answer for a request without a body, or undefined when it should go to a backend. */
export function answerLocally(method: string, path: string, fleet: Fleet, version: string): { status: number; body: string } | undefined {
  const endpoints = localEndpoints(fleet.routableModels(), fleet.backends().filter(isRoutable).length, version);
  const hit = endpoints.find((e) => e.methods.includes(method) && e.paths.includes(path));
  if (hit) return hit;
  if (!READ_METHODS.includes(method)) return undefined;
  return path.startsWith('/v1/models/') ? UNKNOWN_MODEL : NO_ENDPOINT;
}
