/** node:http plumbing shared by the simulator's routes. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, apiError, validationError } from './errors.js';

/** Large enough for prompts near 128k tokens. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(apiError(`Request body exceeds ${limit} bytes`, 'BadRequestError', 413));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Reads a JSON body the way vLLM's routes accept it: application/json only. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const mediaType = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
  const raw = await readBody(req);
  if (mediaType !== 'application/json') {
    throw validationError([
      {
        type: 'value_error',
        loc: ['header', 'content-type'],
        msg: "Unsupported Media Type: Only 'application/json' is allowed",
      },
    ]);
  }
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const position = /position (\d+)/.exec(String(err))?.[1];
    throw validationError([
      {
        type: 'json_invalid',
        loc: ['body', position === undefined ? 0 : Number(position)],
        msg: 'JSON decode error',
        ctx: { error: text.trim() === '' ? 'Expecting value' : 'Invalid JSON' },
      },
    ]);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

export function sendText(res: ServerResponse, status: number, contentType: string, text: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof ApiError) {
    sendJson(res, err.status, err.body);
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  sendJson(res, 500, { error: { message, type: 'InternalServerError', param: null, code: 500 } });
}

/** Server-sent events as vLLM streams them: "data: <json>\n\n", closed by "data: [DONE]\n\n". */
export interface SseWriter {
  send(data: unknown): void;
  done(): void;
}

export function startSse(res: ServerResponse): SseWriter {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  res.flushHeaders();
  return {
    send(data) {
      if (!res.writableEnded) res.write(`data: ${JSON.stringify(data)}\n\n`);
    },
    done() {
      if (!res.writableEnded) res.end('data: [DONE]\n\n');
    },
  };
}
