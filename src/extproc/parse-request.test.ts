import { describe, expect, it } from 'vitest';
import { parseRequestBody } from './parse-request.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('request parsing', () => {
  it('reads model, stream, user and the prompt source', () => {
    const r = parseRequestBody(enc('{"model":"m","stream":true,"user":"u1","messages":[{"role":"user","content":"hi"}]}'), {
      contentType: 'application/json; charset=utf-8',
    });
    expect(r).toEqual({
      ok: true,
      rewriteContentType: false,
      request: { model: 'm', stream: true, user: 'u1', prompt: { kind: 'text', bytes: Buffer.from('[{"role":"user","content":"hi"}]') } },
    });
    const c = parseRequestBody(enc('{"model":"m","prompt":[1,2,3]}'));
    expect(c.ok && c.request.prompt).toEqual({ kind: 'tokens', tokens: [1, 2, 3] });
  });

  it.each([
    ['a prompt string, as spelled (escapes kept)', '{"model":"m","prompt":"a\\nb"}', 'a\\nb'],
    ['the first of a batch of prompts', '{"model":"m","prompt":[ "one", "two"]}', 'one'],
    ['embeddings input', '{"model":"m","input":"vec"}', 'vec'],
    ['messages over a prompt', '{"prompt":"p","model":"m","messages":[]}', '[]'],
    ['a null prompt falls back to input', '{"model":"m","prompt":null,"input":"i"}', 'i'],
  ])('finds the prompt text: %s', (_name, body, text) => {
    const r = parseRequestBody(enc(body));
    expect(r.ok && r.request.prompt).toEqual({ kind: 'text', bytes: Buffer.from(text) });
  });

  it('reads escaped strings and keys like JSON.parse, and takes the last of duplicate keys', () => {
    const r = parseRequestBody(enc('{"model":"first","mod\\u0065l":"caf\\u00e9 \\"x\\"","stream" : false ,"prompt":[[5,6],[7]]}'));
    expect(r.ok && r.request).toMatchObject({ model: 'café "x"', stream: false, prompt: { kind: 'tokens', tokens: [5, 6] } });
  });

  it('accepts curl -d bodies (form content type) that are JSON, and asks to fix the header', () => {
    const r = parseRequestBody(enc('{"model":"m","prompt":"x"}'), { contentType: 'application/x-www-form-urlencoded' });
    expect(r.ok && r.rewriteContentType).toBe(true);
  });

  it.each([
    ['malformed JSON', '{"model":', {}, 400, 'invalid_json'],
    ['trailing garbage', '{"model":"m"} x', {}, 400, 'invalid_json'],
    ['a bad escape in a field the router reads', '{"model":"a\\qb"}', {}, 400, 'invalid_json'],
    ['null model', '{"model":null}', {}, 400, 'missing_model'],
    ['object model', '{"model":{"a":1}}', {}, 400, 'invalid_model'],
    ['empty body', '', {}, 400, 'invalid_request_body'],
    ['array body', '[1]', {}, 400, 'invalid_request_body'],
    ['missing model', '{"prompt":"x"}', {}, 400, 'missing_model'],
    ['numeric model', '{"model":7}', {}, 400, 'invalid_model'],
    ['empty model', '{"model":""}', {}, 400, 'invalid_model'],
    ['string stream', '{"model":"m","stream":"yes"}', {}, 400, 'invalid_stream'],
    ['application/xml', '{"model":"m"}', { contentType: 'application/xml' }, 415, 'unsupported_media_type'],
    ['text/plain that is not JSON', 'model=m', { contentType: 'text/plain' }, 415, 'unsupported_media_type'],
    ['form that is not JSON', 'a=b', { contentType: 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
    ['gzip', '{"model":"m"}', { contentEncoding: 'gzip' }, 415, 'unsupported_content_encoding'],
  ] as const)('rejects %s with a precise OpenAI-style error', (_name, body, context, status, code) => {
    const r = parseRequestBody(enc(body), context);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ status, code });
  });

  it('rejects invalid UTF-8', () => {
    const r = parseRequestBody(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
    expect(!r.ok && r.error.message).toMatch(/UTF-8/);
  });

  it('uses the default model when the body names none', () => {
    const r = parseRequestBody(enc('{"prompt":"x"}'), { defaultModel: 'only' });
    expect(r.ok && r.request.model).toBe('only');
  });
});

describe('multipart uploads', () => {
  it('reads the model form field and leaves the upload alone', () => {
    const body = enc(
      '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n' +
        '--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-large\r\n--XyZ--\r\n',
    );
    const r = parseRequestBody(body, { contentType: 'multipart/form-data; boundary=XyZ' });
    expect(r.ok && r.request).toEqual({ model: 'whisper-large', stream: false, prompt: { kind: 'none' } });
    const none = parseRequestBody(enc('--XyZ\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--XyZ--\r\n'), {
      contentType: 'multipart/form-data; boundary=XyZ',
    });
    expect(!none.ok && none.error.code).toBe('missing_model');
  });
});
