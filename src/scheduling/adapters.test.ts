import { describe, expect, it } from 'vitest';
import { backendView, vllmLoad } from '../../test/helpers/backend-view.js';
import { parseConfig } from '../config/load.js';
import { adapterState, createAdapterActivity } from './adapters.js';
import { createSchedulerMemory } from './memory.js';
import { schedulerFromConfig } from './registry.js';

const withLora = (id: string, running: string[], waiting: string[] = [], load = 0) =>
  backendView(id, { models: ['m', 'a', 'b', 'c', 'd'], metrics: vllmLoad(load, 0, { lora: { maxLoras: 2, running, waiting } }) });

describe('LoRA adapters', () => {
  it('says where an adapter stands: at work, a free slot, every slot taken, or no figures', () => {
    expect(adapterState(withLora('x', ['a']), 'a', [])).toBe('active');
    expect(adapterState(withLora('x', [], ['a']), 'a', [])).toBe('active');
    expect(adapterState(withLora('x', ['b']), 'a', [])).toBe('free-slot');
    expect(adapterState(withLora('x', ['b', 'c']), 'a', [])).toBe('full');
    // What this router sent since the last scrape counts as at work and takes a slot.
    expect(adapterState(withLora('x', ['b']), 'a', ['c'])).toBe('full');
    expect(adapterState(withLora('x', ['b']), 'a', ['a'])).toBe('active');
    expect(adapterState(backendView('y'), 'a', [])).toBe('unknown');
  });

  it('forgets what it sent after a while, oldest first', () => {
    const activity = createAdapterActivity();
    activity.record('x', 'a', 0);
    activity.record('x', 'b', 1500);
    expect(activity.recent('x', 1600)).toEqual(['a', 'b']);
    expect(activity.recent('x', 2500)).toEqual(['b']);
    expect(activity.recent('x', 9000)).toEqual([]);
  });

  for (const profile of ['default', 'lora-affinity'] as const) {
    it(`${profile}: sends an adapter where it is at work, then where a slot is free, not where it would wait for one`, () => {
      const config = parseConfig({ backends: [], ...(profile === 'default' ? {} : { scheduler: { scorers: [{ name: 'lora-affinity' }] } }) });
      const pick = (fleet: ReturnType<typeof withLora>[]) => {
        const scheduler = schedulerFromConfig(config, createSchedulerMemory(config), () => 0.5);
        const d = scheduler.schedule({ model: 'a', adapter: 'a', stream: false, prompt: { kind: 'none' } }, fleet);
        return d.kind === 'route' ? d.primary.id : d.code;
      };
      // Equal load: at work beats a free slot beats a full batch, whatever the order.
      expect(pick([withLora('full', ['b', 'c']), withLora('free', ['b']), withLora('busy', ['a', 'b'])])).toBe('busy');
      expect(pick([withLora('full', ['b', 'c']), withLora('free', ['b'])])).toBe('free');
      // The base model takes no adapter slot.
      const scheduler = schedulerFromConfig(config, createSchedulerMemory(config), () => 0.5);
      const base = scheduler.schedule({ model: 'm', stream: false, prompt: { kind: 'none' } }, [withLora('p', ['b', 'c']), withLora('q', ['a'])]);
      expect(base.kind).toBe('route');
    });
  }

  it('spreads a burst of new adapters over free slots instead of piling them on one server', () => {
    const config = parseConfig({ backends: [] });
    const scheduler = schedulerFromConfig(config, createSchedulerMemory(config), () => 0.5);
    const fleet = [withLora('p', []), withLora('q', [])];
    const picks = ['a', 'b', 'c', 'd'].map((adapter) => {
      const d = scheduler.schedule({ model: adapter, adapter, stream: false, prompt: { kind: 'none' } }, fleet);
      return d.kind === 'route' ? d.primary.id : d.code;
    });
    // Two slots each: after two adapters on one server, the third finds it full.
    expect(picks.filter((p) => p === 'p').length).toBe(2);
    expect(picks.filter((p) => p === 'q').length).toBe(2);
  });
});
