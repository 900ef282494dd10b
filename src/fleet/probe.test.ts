import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpProbe } from './probe.js';

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
  const probe = createHttpProbe();
  let server: Server;
  let good: string;
  let bad: string;
  let named: string;
  const seen: string[] = [];
  let switching: string;
  let switchMode: 'plain' | 'down' | 'named' = 'plain';
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.url!);
      const [, kind, ...rest] = req.url!.split('/');
      const path = rest.join('/');
      if (kind === 'named') {
        // As vLLM: the series asked for by name on /metrics/, the whole page on /metrics.
        const names = new URL(req.url!, 'http://x').searchParams.getAll('name[]');
        if (path.startsWith('metrics/?') && names.includes('vllm:num_requests_running')) return void res.end(METRICS);
        if (path === 'metrics') return void res.end(METRICS);
        return void res.writeHead(404).end();
      }
      if (kind === 'switch') {
        if (switchMode === 'down') return void res.writeHead(503).end();
        if (path === 'metrics' || (switchMode === 'named' && path.startsWith('metrics/?'))) return void res.end(METRICS);
        return void res.writeHead(404).end();
      }
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
    named = `${base}/named`;
    switching = `${base}/switch`;
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

  it('asks for the series it reads by name where the server serves that, and for the whole page where it does not', async () => {
    const fresh = createHttpProbe();
    const paths = async (url: string) => {
      seen.length = 0;
      await fresh.metrics(url, 1000).catch(() => undefined);
      return seen.map((u) => u.replace(/\?.*/, '?...'));
    };
    expect(await paths(named)).toEqual(['/named/metrics/?...']);
    expect(await paths(named)).toEqual(['/named/metrics/?...']);
    // No /metrics/ (a 404 here; a page that is not one counts the same): /metrics, from then on.
    expect(await paths(good)).toEqual(['/good/metrics/?...', '/good/metrics']);
    expect(await paths(good)).toEqual(['/good/metrics']);
    expect(await paths(bad)).toEqual(['/bad/metrics/?...', '/bad/metrics']);
    expect(await paths(bad)).toEqual(['/bad/metrics/?...', '/bad/metrics']); // never a page: not remembered
    // A server remembered as plain that then fails is asked by name again: it may have been replaced.
    switchMode = 'plain';
    expect(await paths(switching)).toEqual(['/switch/metrics/?...', '/switch/metrics']);
    switchMode = 'down';
    expect(await paths(switching)).toEqual(['/switch/metrics']);
    switchMode = 'named';
    expect(await paths(switching)).toEqual(['/switch/metrics/?...']);
  });

  it('says what went wrong', async () => {
    await expect(probe.health(bad, 1000)).rejects.toThrow('/health answered 503');
    await expect(probe.metrics(bad, 1000)).rejects.toThrow(/no vllm:num_requests_running/);
    await expect(probe.models(bad, 1000)).rejects.toThrow('/v1/models listed no models');
    await expect(probe.metrics(`${bad}/slow?`, 100)).rejects.toMatchObject({ message: '/metrics timed out after 100 ms', timedOut: true });
  });
});
