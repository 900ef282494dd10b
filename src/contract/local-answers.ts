import { apiError, errorBody, type HttpError } from './errors.js';

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

/**
 * A model as a vLLM server's /v1/models describes it: what clients read besides the id
 * (`max_model_len` for the context size, `parent` for a LoRA adapter's base model).
 */
export interface ModelCard {
  id: string;
  owned_by: string;
  /** The checkpoint the server loaded (a path or hub name); for an adapter, its path. */
  root: string;
  /** The base model of a LoRA adapter, else null. */
  parent: string | null;
  /** Context size; null where vLLM sends null (a LoRA adapter's card). */
  max_model_len?: number | null;
  permission?: unknown[];
}

const STARTED = Math.floor(Date.now() / 1000);
/** Methods that only read: answered locally, or 404 when no endpoint has the path. */
export const READ_METHODS: readonly string[] = ['GET', 'HEAD'];

/** vLLM's field order; `created` is when the router started, as vLLM's is its own start. */
const modelObject = (c: ModelCard) => ({
  id: c.id,
  object: 'model',
  created: STARTED,
  owned_by: c.owned_by,
  root: c.root,
  parent: c.parent,
  ...(c.max_model_len !== undefined ? { max_model_len: c.max_model_len } : {}),
  ...(c.permission !== undefined ? { permission: c.permission } : {}),
});
const error = (e: HttpError) => ({ status: e.status, body: errorBody(e) });

/** GET of a path under /v1/models/ that names no served model. */
export const UNKNOWN_MODEL = error(apiError('model_not_found'));
/** GET of any other path this API does not have. */
export const NO_ENDPOINT = error(apiError('not_found'));
/** Any other method on a path outside the public API (config `api.paths`). */
export const NOT_PUBLIC = error(apiError('not_found', 'not-public'));
/** A request to an inference path that carries no body. */
export const NEEDS_BODY = error(apiError('invalid_request_body', 'missing'));

export function localEndpoints(models: readonly ModelCard[], routableBackends: number, version: string): LocalEndpoint[] {
  const health =
    routableBackends > 0 ? { status: 200, body: JSON.stringify({ status: 'ok', backends: routableBackends }) } : error(apiError('no_healthy_backend'));
  return [
    { paths: ['/v1/models'], methods: READ_METHODS, status: 200, body: JSON.stringify({ object: 'list', data: models.map(modelObject) }) },
    ...models.map((m) => ({
      paths: [...new Set([`/v1/models/${m.id}`, `/v1/models/${encodeURIComponent(m.id)}`])],
      methods: READ_METHODS,
      status: 200,
      body: JSON.stringify(modelObject(m)),
    })),
    // vLLM answers POST /ping too (SageMaker's health check).
    { paths: ['/health', '/ping'], methods: [...READ_METHODS, 'POST'], ...health },
    { paths: ['/version'], methods: READ_METHODS, status: 200, body: JSON.stringify({ version }) },
    {
      paths: ['/metrics'],
      methods: READ_METHODS,
      ...error(apiError('not_found', '/metrics')),
    },
  ];
}

/** The answer for a request without a body, or undefined when it should go to a backend. */
export function answerLocally(method: string, path: string, endpoints: readonly LocalEndpoint[]): { status: number; body: string } | undefined {
  const hit = endpoints.find((e) => e.methods.includes(method) && e.paths.includes(path));
  if (hit) return hit;
  if (!READ_METHODS.includes(method)) return undefined;
  return path.startsWith('/v1/models/') ? UNKNOWN_MODEL : NO_ENDPOINT;
}
