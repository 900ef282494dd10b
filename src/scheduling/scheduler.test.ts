import { describe, expect, it } from 'vitest';
import type { BackendView } from '../fleet/backend.js';
import { backendView, vllmLoad } from '../../test/helpers/backend-view.js';
import { parseConfig } from '../config/load.js';
import { ERRORS } from '../contract/errors.js';
import { createSchedulerMemory } from './memory.js';
import { schedulerFromConfig } from './registry.js';
import { estimateLoad } from './load.js';
import type { SchedulingRequest } from './types.js';

const metrics = (running: number, waiting: number, kvCacheUsage = 0) => vllmLoad(running, waiting, { kvCacheUsage, numGpuBlocks: 1000 });

const backend = (id: string, over: Partial<BackendView> = {}): BackendView =>
  backendView(id, { endpoint: `127.0.0.${id.length}:${8000 + id.charCodeAt(0)}`, models: ['llama'], capacity: 10, metrics: metrics(0, 0), ...over });

const request: SchedulingRequest = { model: 'llama', stream: false, prompt: { kind: 'text', bytes: Buffer.from('hi') } };
const leastLoad = (extra: Record<string, unknown> = {}, random: () => number = () => 0.5) => {
  const config = parseConfig({ scheduler: { scorers: [{ name: 'least-load' }], ...extra } });
  return schedulerFromConfig(config, createSchedulerMemory(config), random);
};
const scheduler = leastLoad();

describe('least-load scheduler', () => {
  it('routes to the least loaded backend and lists the others as fallbacks, best first', () => {
    const a = backend('a', { metrics: metrics(8, 2) });
    const b = backend('b', { metrics: metrics(1, 0) });
    const c = backend('c', { metrics: metrics(4, 0) });
    const decision = scheduler.schedule(request, [a, b, c]);
    expect(decision.kind).toBe('route');
    if (decision.kind !== 'route') return;
    expect(decision.primary.id).toBe('b');
    expect(decision.fallbacks.map((f: BackendView) => f.id)).toEqual(['c', 'a']);
  });

  it('counts requests routed since the last scrape while they are in flight', () => {
    const a = backend('a', { metrics: metrics(1, 0), unseenDispatches: 5, inflight: 5 });
    const b = backend('b', { metrics: metrics(3, 0) });
    const decision = scheduler.schedule(request, [a, b]);
    expect(decision.kind === 'route' && decision.primary.id).toBe('b');
  });

  it('never treats a backend without metrics as idle: its in-flight count is the floor', () => {
    const stale = backend('a', { metrics: undefined, inflight: 6 });
    const busy = backend('b', { metrics: metrics(4, 0) });
    expect(estimateLoad(stale, { waitingWeight: 1, kvCacheWeight: 0 })).toBe(0.6);
    const decision = scheduler.schedule(request, [stale, busy]);
    expect(decision.kind === 'route' && decision.primary.id).toBe('b');
  });

  it('skips unhealthy backends and backends of other models', () => {
    const sick = backend('a', { health: 'unhealthy' });
    const other = backend('b', { models: ['qwen'] });
    const fine = backend('c', { metrics: metrics(9, 9) });
    const decision = scheduler.schedule(request, [sick, other, fine]);
    expect(decision.kind === 'route' && [decision.primary.id, decision.fallbacks.length]).toEqual(['c', 0]);
  });

  it('answers 404 for a model nobody serves and 503 when all its backends are down', () => {
    // The scheduler gives the reason; the error catalogue says how a client hears it.
    const unknown = scheduler.schedule(request, []);
    expect(unknown).toMatchObject({ kind: 'reject', code: 'model_not_found' });
    expect(unknown.kind === 'reject' && ERRORS[unknown.code].status).toBe(404);
    const down = scheduler.schedule(request, [backend('a', { health: 'unhealthy' })]);
    expect(down.kind === 'reject' && ERRORS[down.code].status).toBe(503);
  });

  it('sends nothing to a suspect backend while another is fine, and still routes when all are suspect', () => {
    const quiet = backend('a', { metrics: metrics(0, 0), suspect: true });
    const busy = backend('b', { metrics: metrics(8, 2) });
    expect(scheduler.schedule(request, [quiet, busy])).toMatchObject({ kind: 'route', primary: { id: 'b' } });
    const d = scheduler.schedule(request, [quiet, { ...busy, suspect: true }]);
    expect(d.kind === 'route' && d.primary.id).toBe('a');
  });

  it('spreads ties instead of always choosing the first backend', () => {
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const spread = leastLoad({ fallbacks: 0 }, random);
    const fleet = [backend('a'), backend('b'), backend('c')];
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const d = spread.schedule(request, fleet);
      if (d.kind === 'route') counts.set(d.primary.id, (counts.get(d.primary.id) ?? 0) + 1);
    }
    for (const id of ['a', 'b', 'c']) expect(counts.get(id)).toBeGreaterThan(60);
  });

  it('weighs KV-cache pressure', () => {
    const full = backend('a', { metrics: metrics(2, 0, 0.95) });
    const empty = backend('b', { metrics: metrics(3, 0, 0.1) });
    const decision = scheduler.schedule(request, [full, empty]);
    expect(decision.kind === 'route' && decision.primary.id).toBe('b');
  });
});
