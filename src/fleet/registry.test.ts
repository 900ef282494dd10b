import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { silentLogger } from '../support/log.js';
import { createRegistry } from './registry.js';

const backends = (list: Array<{ name: string; url: string; models?: string[] }>) => parseConfig({ backends: list }).backends;

describe('fleet registry (the datastore: no I/O)', () => {
  it('keeps an unchanged backend with its live state, replaces one whose URL changed, removes the rest', () => {
    const registry = createRegistry(silentLogger);
    const first = registry.reconcile(backends([{ name: 'a', url: 'http://10.0.0.1:8000', models: ['m'] }, { name: 'b', url: 'http://10.0.0.2:8000', models: ['m'] }, { name: 'c', url: 'http://10.0.0.3:8000', models: ['m'] }]));
    expect(first.added.map((b) => b.id)).toEqual(['a', 'b', 'c']);
    const [a, b] = first.added;
    registry.dispatch(a!);
    registry.dispatch(a!);
    const next = registry.reconcile(backends([{ name: 'a', url: 'http://10.0.0.1:8000/', models: ['m'] }, { name: 'b', url: 'http://10.0.0.9:8000', models: ['m'] }]));
    expect(next.added.map((x) => x.id)).toEqual(['b']);
    expect(next.removed.map((x) => x.id).sort()).toEqual(['b', 'c']);
    expect(next.removed).toContain(b);
    expect(registry.backends().find((x) => x.id === 'a')).toBe(a);
    expect(a!.inflight).toBe(2);
    expect(registry.has(b!)).toBe(false);
  });

  it('lets the config name models, and reads them from the server again once it stops naming them', () => {
    const registry = createRegistry(silentLogger);
    const [a] = registry.reconcile(backends([{ name: 'a', url: 'http://10.0.0.1:8000', models: ['m'] }])).added;
    expect(a).toMatchObject({ models: ['m'], modelsFromConfig: true });
    registry.reconcile(backends([{ name: 'a', url: 'http://10.0.0.1:8000' }]));
    expect(a).toMatchObject({ models: [], modelsFromConfig: false });
    a!.models = ['read-from-server'];
    registry.reconcile(backends([{ name: 'a', url: 'http://10.0.0.1:8000' }]));
    expect(a!.models).toEqual(['read-from-server']);
  });

  it('indexes backends by model, counts only routable ones as serving, and tells listeners once per burst of changes', async () => {
    const registry = createRegistry(silentLogger);
    let notified = 0;
    registry.onChange(() => notified++);
    const [a, b] = registry.reconcile(backends([{ name: 'a', url: 'http://10.0.0.1:8000', models: ['m', 'n'] }, { name: 'b', url: 'http://10.0.0.2:8000', models: ['n'] }])).added;
    a!.endpoint = '10.0.0.1:8000';
    b!.endpoint = '10.0.0.2:8000';
    a!.health = 'unhealthy';
    registry.changed();
    registry.changed();
    await Promise.resolve();
    expect(notified).toBe(1);
    expect(registry.servingModel('m')).toEqual([a]);
    expect(registry.servingModel('n')).toEqual([a, b]);
    expect(registry.servingModel('x')).toEqual([]);
    expect(registry.routableModels()).toEqual(['n']);
    registry.release(b!);
    expect(b!.inflight).toBe(0); // never below zero
    expect(b!.finished).toBe(0); // and a release with nothing in flight finishes nothing
    registry.dispatch(b!);
    registry.release(b!, 4000);
    expect([b!.dispatched, b!.finished, b!.inflight]).toEqual([1, 1, 0]);
    // Its prompt text counts toward the backend's bytes per token once it has ended.
    expect(b!.endedPromptBytes).toBe(4000);
    registry.release(b!, 4000);
    expect(b!.endedPromptBytes).toBe(4000); // nothing was in flight
    // Both count toward what the next scrape will show and the last did not.
    expect([b!.unseenDispatches, b!.unseenFinishes]).toEqual([1, 1]);
  });
});
