/**
 * The request paths forwarded to backends by default: vLLM's public inference API. Everything
 * else a vLLM server may expose (`/reset_prefix_cache`, `/sleep`, `/wake_up`, `/collective_rpc`,
 * `/v1/load_lora_adapter`, `/start_profile`, ...) controls the server, not one request, and is
 * answered 404 unless the config's `api.paths` lists it. Bodiless reads (`/v1/models`,
 * `/health`, `/version`) are answered by the router itself and need no entry.
 */
export const DEFAULT_PUBLIC_PATHS: readonly string[] = [
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/responses',
  '/v1/embeddings',
  '/pooling',
  '/classify',
  '/score',
  '/v1/score',
  '/rerank',
  '/v1/rerank',
  '/v2/rerank',
  '/tokenize',
  '/detokenize',
  '/v1/audio/transcriptions',
  '/v1/audio/translations',
];

/** An RE2 (and JavaScript) regex matching exactly these paths. */
export function exactPathsRegex(paths: readonly string[]): string {
  return `^(${paths.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`;
}
