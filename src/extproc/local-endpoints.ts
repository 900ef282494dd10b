import type { Fleet } from '../fleet/fleet.js';
import { isRoutable } from '../fleet/fleet.js';
import { httpError, type HttpError } from './openai-error.js';

/** An answer the router gives itself, without a backend. */
export type LocalAnswer = { status: number; body: string; contentType?: string } | HttpError;

const STARTED = Math.floor(Date.now() / 1000);

const modelCard = (id: string) => ({ id, object: 'model', created: STARTED, owned_by: 'vllm', root: id, parent: null });

/**
 * Answers for requests that carry no body: the fleet seen as one vLLM server. Returns
 * undefined for paths that should go to a backend.
 */
export function answerLocally(method: string, path: string, fleet: Fleet, version: string): LocalAnswer | undefined {
  const get = method === 'GET' || method === 'HEAD';
  if (path === '/v1/models' && get) {
    return { status: 200, body: JSON.stringify({ object: 'list', data: fleet.routableModels().map(modelCard) }) };
  }
  if (path.startsWith('/v1/models/') && get) {
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    if (fleet.routableModels().includes(id)) return { status: 200, body: JSON.stringify(modelCard(id)) };
    return httpError(404, 'model_not_found', `The model \`${id}\` does not exist.`, 'model');
  }
  if ((path === '/health' || path === '/ping') && (get || method === 'POST')) {
    const routable = fleet.backends().filter(isRoutable).length;
    return routable > 0
      ? { status: 200, body: JSON.stringify({ status: 'ok', backends: routable }) }
      : httpError(503, 'no_healthy_backend', 'No backend is healthy.');
  }
  if (path === '/version' && get) return { status: 200, body: JSON.stringify({ version }) };
  if (path === '/metrics' && get) {
    return httpError(404, 'not_found', "The router's metrics are served on its admin port (/metrics there); backends' metrics are scraped by the router.");
  }
  if (get) return httpError(404, 'not_found', `No endpoint ${method} ${path}.`);
  return undefined;
}
