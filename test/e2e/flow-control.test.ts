import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

// One simulated vLLM server with two slots behind a real Envoy and the router with flow control
// on: past two running there, the router holds requests itself.
describe('flow control under saturation', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      backends: [{ models: ['m'], capacity: 2, engine: { maxNumSeqs: 2, timeScale: 0.5 } }],
      config: { flowControl: { enabled: true, maxQueued: 12, maxWaitMs: 20_000 } },
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** Sends one completion; resolves with its status, order of completion and body. */
  const order: string[] = [];
  const send = async (id: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${stack.envoy.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: 'm', prompt: `request ${id}`, max_tokens: 60, ignore_eos: true }),
    });
    const body = (await res.json()) as { error?: { type: string; code: string } };
    order.push(id);
    return { id, status: res.status, retryAfter: res.headers.get('retry-after'), body };
  };
  const later = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('serves a light tenant between a heavy one\'s requests instead of after all of them', async () => {
    order.length = 0;
    const heavy = Array.from({ length: 9 }, (_, i) => send(`heavy-${i}`, { 'x-tenant-id': 'heavy' }));
    await later(100);
    const light = [send('light-0', { 'x-tenant-id': 'light' }), send('light-1', { 'x-tenant-id': 'light' })];
    const results = await Promise.all([...heavy, ...light]);
    expect(results.every((r) => r.status === 200)).toBe(true);
    // A few were at the server before the light tenant came (two running, perhaps one more);
    // then the tenants take turns, so the light one is done before the heavy one's last two.
    // First come, first served, it would finish last.
    expect(order.indexOf('light-1')).toBeLessThan(order.indexOf('heavy-7'));
    // Every request was routed by the router: none waited past Envoy's message timeout and went around it.
    const metrics = await fetch(`http://127.0.0.1:${stack.router.adminPort}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/vllm_router_flow_wait_seconds_count\{outcome="released"\} [1-9]/);
  });

  it('lets a higher priority go first', async () => {
    order.length = 0;
    const low = Array.from({ length: 8 }, (_, i) => send(`low-${i}`, { 'x-tenant-id': 'a' }));
    await later(100);
    const high = [send('high-0', { 'x-request-priority': '5', 'x-tenant-id': 'b' }), send('high-1', { 'x-request-priority': '5', 'x-tenant-id': 'a' })];
    await Promise.all([...low, ...high]);
    // Both overtake the low requests still held when they came.
    expect(order.indexOf('high-1')).toBeLessThan(order.indexOf('low-5'));
  });

  it('sheds past the queue bound with 429 rate_limit_error and retry-after, and says what it holds', async () => {
    const all = Array.from({ length: 20 }, (_, i) => send(`burst-${i}`, { 'x-tenant-id': `t${i % 3}` }));
    await later(150);
    const stats = (await fetch(`http://127.0.0.1:${stack.router.adminPort}/stats`).then((r) => r.json())) as {
      flowControl: { enabled: boolean; queued: number; bands: Array<{ priority: number; tenants: Array<{ tenant: string; queued: number }> }> };
    };
    // Held per band and tenant (some may have been let go already).
    expect(stats.flowControl.enabled).toBe(true);
    expect(stats.flowControl.queued).toBeGreaterThan(6);
    expect(stats.flowControl.queued).toBeLessThanOrEqual(12);
    expect(stats.flowControl.bands[0]!.tenants.map((t) => t.tenant).sort()).toEqual(['t0', 't1', 't2']);
    const results = await Promise.all(all);
    const shed = results.filter((r) => r.status === 429);
    // Two or so at the server, twelve held, the rest shed at once.
    expect(shed.length).toBeGreaterThanOrEqual(4);
    expect(shed.length).toBeLessThanOrEqual(6);
    for (const r of shed) {
      expect(r.retryAfter).toBe('1');
      expect(r.body.error).toMatchObject({ type: 'rate_limit_error', code: 'request_shed' });
    }
    expect(results.filter((r) => r.status === 200).length).toBe(20 - shed.length);
  });
});
