import type { PromptSource, SchedulingRequest } from '../scheduling/types.js';
import { httpError, type HttpError } from './openai-error.js';

export type ParseResult = { ok: true; request: SchedulingRequest; rewriteContentType: boolean } | { ok: false; error: HttpError };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Content types we read as JSON. `application/x-www-form-urlencoded` is what `curl -d` sends
 * by default and `text/plain` what fetch() sends for a string body; when such a body is a
 * JSON object we accept it and fix the header upstream, since vLLM would reject it.
 */
function contentTypeKind(contentType: string | undefined): 'json' | 'form' | 'multipart' | 'other' {
  if (contentType === undefined || contentType === '') return 'json';
  const mime = contentType.split(';')[0]!.trim().toLowerCase();
  if (mime === 'multipart/form-data') return 'multipart';
  if (mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json'))) return 'json';
  if (mime === 'application/x-www-form-urlencoded' || mime === 'text/plain') return 'form';
  return 'other';
}

const fail = (error: HttpError): ParseResult => ({ ok: false, error });

/**
 * Reads the routing-relevant fields of an OpenAI/vLLM JSON request body. Everything else is
 * left for the backend to validate, so the router never rejects what vLLM would accept.
 */
export interface BodyContext {
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  /** Model to assume when the body names none (endpoints such as /tokenize on a one-model fleet). */
  defaultModel?: string | undefined;
}

export function parseRequestBody(body: Uint8Array, context: BodyContext = {}): ParseResult {
  const { contentType, contentEncoding, defaultModel } = context;
  if (contentEncoding && contentEncoding.toLowerCase() !== 'identity') {
    return fail(
      httpError(415, 'unsupported_content_encoding', `Request bodies must not be compressed (got Content-Encoding: ${contentEncoding}); send plain JSON.`),
    );
  }
  const kind = contentTypeKind(contentType);
  if (kind === 'other') {
    return fail(httpError(415, 'unsupported_media_type', `Expected a JSON body with Content-Type: application/json, got '${contentType}'.`));
  }
  if (body.length === 0) {
    return fail(httpError(400, 'invalid_request_body', 'The request body is empty; expected a JSON object.'));
  }
  if (kind === 'multipart') return parseMultipart(body, defaultModel);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return fail(httpError(400, 'invalid_request_body', 'The request body is not valid UTF-8.'));
  }
  if (kind === 'form' && !text.trimStart().startsWith('{')) {
    return fail(httpError(415, 'unsupported_media_type', `Expected a JSON body with Content-Type: application/json, got '${contentType}'.`));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(httpError(400, 'invalid_json', `The request body is not valid JSON: ${(err as Error).message}`));
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return fail(httpError(400, 'invalid_request_body', 'The request body must be a JSON object.'));
  }
  const fields = json as Record<string, unknown>;
  const model = fields.model ?? defaultModel;
  if (model === undefined || model === null) {
    return fail(httpError(400, 'missing_model', "The 'model' field is required.", 'model'));
  }
  if (typeof model !== 'string' || model === '') {
    return fail(httpError(400, 'invalid_model', "The 'model' field must be a non-empty string.", 'model'));
  }
  const stream = fields.stream;
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    return fail(httpError(400, 'invalid_stream', "The 'stream' field must be a boolean.", 'stream'));
  }
  const user = typeof fields.user === 'string' ? fields.user : undefined;
  return {
    ok: true,
    request: { model, stream: stream === true, prompt: promptOf(fields), ...(user !== undefined ? { user } : {}) },
    rewriteContentType: kind === 'form',
  };
}

function promptOf(fields: Record<string, unknown>): PromptSource {
  const { messages, prompt, input } = fields;
  if (Array.isArray(messages)) return { kind: 'messages', messages };
  const p = prompt ?? input;
  if (typeof p === 'string') return { kind: 'text', text: p };
  if (Array.isArray(p) && p.length > 0) {
    if (typeof p[0] === 'string') return { kind: 'text', text: p[0] };
    if (typeof p[0] === 'number') return { kind: 'tokens', tokens: p as number[] };
    if (Array.isArray(p[0])) return { kind: 'tokens', tokens: p[0] as number[] };
  }
  return { kind: 'none' };
}

/**
 * Multipart bodies (audio transcription and translation uploads) carry `model` as a form
 * field; only that field is read, the upload itself is passed through untouched.
 */
function parseMultipart(body: Uint8Array, defaultModel: string | undefined): ParseResult {
  const head = Buffer.from(body.buffer, body.byteOffset, Math.min(body.length, 1 << 20)).toString('latin1');
  const match = /content-disposition:[^\r\n]*\bname="model"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)\r?\n/i.exec(head);
  const model = match ? Buffer.from(match[1]!, 'latin1').toString('utf8').trim() : defaultModel;
  if (!model) return fail(httpError(400, 'missing_model', "The form field 'model' is required.", 'model'));
  return { ok: true, request: { model, stream: false, prompt: { kind: 'none' } }, rewriteContentType: false };
}
