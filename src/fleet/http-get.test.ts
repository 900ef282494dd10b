import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetError, httpGet } from './http-get.js';

describe('httpGet', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 500);
      if (req.url === '/huge') return void res.end(Buffer.alloc(17 * 1024 * 1024, 0x61));
      if (req.url === '/missing') return void res.writeHead(404).end('no');
      res.end('héllo');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('returns the status and the body as text, on a kept-alive connection', async () => {
    expect(await httpGet(`${base}/`, 1000)).toEqual({ status: 200, body: 'héllo' });
    expect(await httpGet(`${base}/missing`, 1000)).toEqual({ status: 404, body: 'no' });
  });

  it('says when it timed out', async () => {
    const err = await httpGet(`${base}/slow`, 50).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GetError);
    expect((err as GetError).message).toBe('timed out after 50 ms');
    expect((err as GetError).timedOut).toBe(true);
  });

  it('names the connection error', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('refuses a body too large to be a scrape', async () => {
    await expect(httpGet(`${base}/huge`, 5000)).rejects.toThrow(/larger than/);
  });
});
