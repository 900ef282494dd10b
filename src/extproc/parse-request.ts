import { isUtf8 } from 'node:buffer';
import type { PromptSource, SchedulingRequest } from '../scheduling/types.js';
import { JsonSyntaxError, scanJson, skipString, skipWhitespace, stringText, type ScannedJson, type Span } from './json-scan.js';
import { apiError, type HttpError } from '../contract/errors.js';

export type ParseResult = { ok: true; request: SchedulingRequest; rewriteContentType: boolean } | { ok: false; error: HttpError };


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
    return fail(apiError('unsupported_content_encoding', contentEncoding));
  }
  const kind = contentTypeKind(contentType);
  if (kind === 'other') {
    return fail(apiError('unsupported_media_type', String(contentType)));
  }
  if (body.length === 0) {
    return fail(apiError('invalid_request_body', 'empty'));
  }
  if (kind === 'multipart') return parseMultipart(body, defaultModel);
  // A view, not a copy: the body is read in place from here on.
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (!isUtf8(buf)) return fail(apiError('invalid_request_body', 'not-utf8'));
  if (kind === 'form' && buf[skipWhitespace(buf, 0)] !== 0x7b /* { */) {
    return fail(apiError('unsupported_media_type', String(contentType)));
  }
  let json: ScannedJson;
  try {
    json = scanJson(buf);
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    return fail(apiError('invalid_json', err.message));
  }
  if (json.root !== 'object') {
    return fail(apiError('invalid_request_body', 'not-an-object'));
  }
  const field = (name: string) => {
    const span = json.members.get(name);
    // `null` reads as absent, as `?? default` did for parsed JSON.
    return span && buf[span.start] !== 0x6e /* n */ ? span : undefined;
  };
  try {
    const modelSpan = field('model');
    const model = modelSpan ? stringAt(buf, modelSpan) : defaultModel;
    if (model === undefined && modelSpan === undefined) {
      return fail(apiError('missing_model'));
    }
    if (typeof model !== 'string' || model === '') {
      return fail(apiError('invalid_model'));
    }
    const streamSpan = field('stream');
    const stream = streamSpan ? buf.toString('latin1', streamSpan.start, streamSpan.end) : 'false';
    if (stream !== 'true' && stream !== 'false') {
      return fail(apiError('invalid_stream'));
    }
    const userSpan = field('user');
    const user = userSpan ? stringAt(buf, userSpan) : undefined;
    return {
      ok: true,
      request: { model, stream: stream === 'true', prompt: promptOf(buf, field), ...(user !== undefined ? { user } : {}) },
      rewriteContentType: kind === 'form',
    };
  } catch (err) {
    // Only a value the router decodes can fail here: a string with a malformed escape
    // (JsonSyntaxError is a SyntaxError, as is JSON.parse's on a token list).
    if (!(err instanceof SyntaxError)) throw err;
    return fail(apiError('invalid_json', err.message));
  }
}

/** The JSON string at `span`, or undefined when the value is not a string. */
const stringAt = (buf: Buffer, span: Span) => (buf[span.start] === QUOTE ? stringText(buf, span.start, span.end) : undefined);

const QUOTE = 0x22;
const OPEN_ARRAY = 0x5b;

/**
 * Where the prompt is: `messages` (chat), else `prompt` or `input` (completions, embeddings).
 * Text stays bytes; only token-id arrays are decoded, as numbers.
 */
function promptOf(buf: Buffer, field: (name: string) => Span | undefined): PromptSource {
  const messages = field('messages');
  if (messages && buf[messages.start] === OPEN_ARRAY) return { kind: 'text', bytes: buf.subarray(messages.start, messages.end) };
  const p = field('prompt') ?? field('input');
  if (!p) return { kind: 'none' };
  if (buf[p.start] === QUOTE) return { kind: 'text', bytes: buf.subarray(p.start + 1, p.end - 1) };
  if (buf[p.start] !== OPEN_ARRAY) return { kind: 'none' };
  // A list: of strings (a batch; the first one is routed on), of token ids, or of id lists.
  const first = skipWhitespace(buf, p.start + 1);
  if (buf[first] === QUOTE) return { kind: 'text', bytes: buf.subarray(first + 1, skipString(buf, first) - 1) };
  if (buf[first] === 0x5d /* ] */) return { kind: 'none' };
  const list = JSON.parse(buf.toString('utf8', p.start, p.end)) as unknown[];
  if (typeof list[0] === 'number') return { kind: 'tokens', tokens: list as number[] };
  if (Array.isArray(list[0])) return { kind: 'tokens', tokens: list[0] as number[] };
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
  if (!model) return fail(apiError('missing_model', 'form'));
  return { ok: true, request: { model, stream: false, prompt: { kind: 'none' } }, rewriteContentType: false };
}
