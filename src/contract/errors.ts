/**
 * Every error an HTTP client can get from the router, or from Envoy through the routes and
 * bootstrap the router ships, in one place: a stable code, a status and a message per entry
 * (as fastify's and undici's error catalogues do). Clients see them in OpenAI's shape,
 * `{"error": {"message", "type", "param", "code"}}`; codes never change meaning.
 */

/** An error answered to the HTTP client in OpenAI's JSON shape. */
export interface HttpError {
  status: number;
  message: string;
  /** OpenAI error type, e.g. invalid_request_error. */
  type: string;
  param: string | null;
  code: string;
}

interface Entry<Args extends unknown[]> {
  status: number;
  /** The request field at fault, if one is. */
  param: string | null;
  message: (...args: Args) => string;
}

const entry = <Args extends unknown[] = []>(status: number, message: (...args: Args) => string, param: string | null = null): Entry<Args> => ({
  status,
  param,
  message,
});

/** What is wrong with a body that is not a JSON object the router can read. */
const BODY_PROBLEMS = {
  empty: 'The request body is empty; expected a JSON object.',
  'not-utf8': 'The request body is not valid UTF-8.',
  'not-an-object': 'The request body must be a JSON object.',
  missing: 'This request needs a JSON body.',
} as const;

export const ERRORS = {
  // The request itself (4xx): answered before any backend sees it.
  unsupported_content_encoding: entry(415, (encoding: string) => `Request bodies must not be compressed (got Content-Encoding: ${encoding}); send plain JSON.`),
  unsupported_media_type: entry(415, (contentType: string) => `Expected a JSON body with Content-Type: application/json, got '${contentType}'.`),
  invalid_request_body: entry(400, (problem: keyof typeof BODY_PROBLEMS) => BODY_PROBLEMS[problem]),
  invalid_json: entry(400, (detail: string) => `The request body is not valid JSON: ${detail}`),
  missing_model: entry(400, (where: 'field' | 'form' = 'field') => (where === 'form' ? "The form field 'model' is required." : "The 'model' field is required."), 'model'),
  invalid_model: entry(400, () => "The 'model' field must be a non-empty string.", 'model'),
  invalid_stream: entry(400, () => "The 'stream' field must be a boolean.", 'stream'),
  /** With a model: a request for it; without: a GET of /v1/models/{id}. */
  model_not_found: entry(
    404,
    (model?: string) => (model === undefined ? 'No model of that name is served; GET /v1/models lists them.' : `The model \`${model}\` does not exist.`),
    'model',
  ),
  /** A read of a path nobody serves, a path outside the public API (config `api.paths`), or /metrics. */
  not_found: entry(404, (what: 'read' | 'not-public' | '/metrics' = 'read') =>
    what === '/metrics'
      ? "The router's metrics are served on its admin port (/metrics there); backends' metrics are scraped by the router."
      : what === 'not-public'
        ? 'No endpoint answers this method on this path: only the public inference API (chat, completions, responses, embeddings, pooling, score, rerank, tokenize, audio) is served.'
        : 'No endpoint answers GET on this path.',
  ),
  /**
   * Answered by Envoy's local reply config (envoy/envoy.yaml), before the router sees the body.
   * Envoy's other own replies (no healthy upstream, upstream failure) carry its response flags
   * (UH, UF, ...) as the code.
   */
  request_too_large: entry(413, () => 'The request body is larger than this endpoint accepts (32 MiB).'),
  // The fleet (429/5xx): the request was fine, no backend can take it now.
  server_overloaded: entry(429, (maxWaiting: number) => `Every backend serving this model has ${maxWaiting} or more requests waiting; retry with backoff.`),
  /** Flow control held the request while every server of its model was saturated, then let it go unserved. */
  request_shed: entry(429, (model: string, why: 'queue-full' | 'wait-limit' | 'displaced') =>
    why === 'wait-limit'
      ? `Every server of \`${model}\` stayed busy for as long as a request may wait here; retry with backoff.`
      : why === 'displaced'
        ? `Every server of \`${model}\` is busy and requests of higher priority took this one's place in the queue; retry with backoff.`
        : `Every server of \`${model}\` is busy and the queue is full; retry with backoff.`,
  ),
  /** With a model: a request for it; without: the fleet's /health. */
  no_healthy_backend: entry(503, (model?: string) =>
    model === undefined ? 'No backend is healthy.' : `No healthy backend is serving the model \`${model}\` right now; try again shortly.`,
  ),
  /** The backend holding the request stopped answering; the router ended the request (a client may retry at once). */
  backend_unresponsive: entry(
    503,
    () => 'The server handling this request stopped responding and was taken out of rotation; retry and the request goes to another.',
  ),
  /** Refused at its headers, before Envoy buffers it (upstream.largeBodyBudgetBytes). */
  large_bodies_busy: entry(
    503,
    (limitMiB: number) => `Large request bodies already hold ${limitMiB} MiB in the gateway, all it takes at once; retry shortly.`,
  ),
  /** Answered by Envoy's overload manager (envoy/envoy.yaml) when its heap is nearly full. */
  proxy_overloaded: entry(503, () => 'The gateway is out of memory for new requests; retry shortly.'),
  no_eligible_endpoint: entry(503, (model: string) => `None of the endpoints the gateway allowed serves \`${model}\`.`),
  /** Answered by Envoy from a route the router serves, when neither the router nor the body's model chose a route. */
  router_unavailable: entry(503, () => 'The router could not choose a backend for this request; try again shortly.'),
  router_error: entry(500, () => 'The router failed to process this request.'),
} satisfies Record<string, Entry<never[]>>;

export type ErrorCode = keyof typeof ERRORS;

/** OpenAI's error type for a status; an unknown model is typed as vLLM types it. */
function openAiType(status: number, code: ErrorCode): string {
  if (code === 'model_not_found') return 'NotFoundError';
  if (status === 401) return 'authentication_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The error a catalogue entry describes, with its message filled in. */
export function apiError<C extends ErrorCode>(code: C, ...args: Parameters<(typeof ERRORS)[C]['message']>): HttpError {
  const e = ERRORS[code] as Entry<unknown[]>;
  return { status: e.status, message: e.message(...args), type: openAiType(e.status, code), param: e.param, code };
}

export function errorBody(error: HttpError): string {
  return JSON.stringify({ error: { message: error.message, type: error.type, param: error.param, code: error.code } });
}
