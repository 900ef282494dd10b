import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpProbe as probe } from './probe.js';

const METRICS = `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
`;

/** An adapter's entry as vLLM 0.32 lists it (no context length of its own: null). */
const VLLM_CARD = {
  id: 'b',
  object: 'model',
  created: 1,
  owned_by: 'vllm',
  root: '/adapters/b',
  parent: 'a',
  max_model_len: null,
  permission: [{ id: 'modelperm-1', object: 'model_permission', allow_sampling: true }],
};

describe('probing backends', () => {
  let server: Server;
  let good: string;
  let bad: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const [, kind, ...rest] = req.url!.split('/');
      const path = rest.join('/');
      if (kind === 'bad') {
        if (path === 'metrics') return void res.end('# not vllm\nfoo 1\n');
        if (path === 'v1/models') return void res.end('{"data":[]}');
        if (path.startsWith('slow')) return;
        return void res.writeHead(503).end();
      }
      if (path === 'health') return void res.end();
      if (path === 'metrics') return void res.end(METRICS);
      if (path === 'v1/models') return void res.end(JSON.stringify({ object: 'list', data: [VLLM_CARD, { id: 'a' }, { id: '' }, 'x'] }));
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    good = `${base}/good`;
    bad = `${base}/bad`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('reads health, load figures and models', async () => {
    await expect(probe.health(good, 1000)).resolves.toBeUndefined();
    expect(await probe.metrics(good, 1000)).toMatchObject({ running: 2, waiting: 1, modelNames: ['m'] });
    expect(await probe.models(good, 1000)).toEqual([
      { id: 'a', owned_by: 'vllm', root: 'a', parent: null },
      { id: 'b', owned_by: 'vllm', root: '/adapters/b', parent: 'a', max_model_len: null, permission: VLLM_CARD.permission },
    ]);
  });

  it('says what went wrong', async () => {
    await expect(probe.health(bad, 1000)).rejects.toThrow('/health answered 503');
    await expect(probe.metrics(bad, 1000)).rejects.toThrow(/no vllm:num_requests_running/);
    await expect(probe.models(bad, 1000)).rejects.toThrow('/v1/models listed no models');
    await expect(probe.metrics(`${bad}/slow?`, 100)).rejects.toMatchObject({ message: '/metrics timed out after 100 ms', timedOut: true });
  });
});
