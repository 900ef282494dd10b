import { describe, expect, it } from 'vitest';
import { backendView, vllmLoad } from '../../test/helpers/backend-view.js';
import { flowControlSchema } from '../config/flow-control-schema.js';
import { createFlowController } from './flow-controller.js';
import type { HoldEnd } from './held-requests.js';

describe('flow controller', () => {
  // One server with two slots; setLoad says how many of our requests it runs and queues.
  const server = backendView('a', { capacity: 2, metrics: vllmLoad(0, 0) });
  const setLoad = (inflight: number) => {
    server.inflight = inflight;
    server.metrics = vllmLoad(Math.min(inflight, 2), Math.max(0, inflight - 2));
  };
  const req = (tenant: string, priority = 0) => ({ model: 'm', priority, tenant });
  const make = (enabled = true) => {
    let t = 0;
    const flow = createFlowController({ config: () => flowControlSchema.parse({ enabled, maxWaitMs: 1000 }), candidates: () => [server], now: () => t });
    return { flow, advance: (ms: number) => (t += ms) };
  };

  it('holds only while every server of the model is saturated, and then everything behind the first held', () => {
    const { flow } = make();
    setLoad(1);
    expect(flow.mustWait(req('x'), [server])).toBe(false);
    setLoad(2);
    expect(flow.mustWait(req('x'), [server])).toBe(true);
    const ends: HoldEnd['kind'][] = [];
    flow.hold({ model: 'm', priority: 0, tenant: 'x' }, (end) => ends.push(end.kind));
    // Room again, but one is held: a newcomer queues behind it.
    setLoad(1);
    expect(flow.mustWait(req('x'), [server])).toBe(true);
    // Let go synchronously when a request of ours ends: what it routes counts before the next is looked at.
    flow.started(req('y'))();
    expect(ends).toEqual(['release']);
    expect(flow.mustWait(req('x'), [server])).toBe(false);
    flow.stop();
    expect(make(false).flow.mustWait(req('x'), [server])).toBe(false);
  });

  it('lets go no more than the servers have room for, each counted as it goes', () => {
    const { flow } = make();
    setLoad(3);
    let released = 0;
    for (let i = 0; i < 5; i++) {
      flow.hold({ model: 'm', priority: 0, tenant: `t${i}` }, (end) => {
        if (end.kind === 'release') {
          released++;
          setLoad(server.inflight + 1); // as routing it dispatches it
        }
      });
    }
    setLoad(0);
    flow.started(req('z'))();
    // Two slots: two go, three stay held.
    expect(released).toBe(2);
    expect(flow.stats()).toMatchObject({ enabled: true, queued: 3 });
    flow.stop();
  });

  it('sheds what waited past maxWaitMs, and a cancelled request leaves no trace', () => {
    const { flow, advance } = make();
    setLoad(3);
    const ends: string[] = [];
    flow.hold({ model: 'm', priority: 0, tenant: 'x' }, (end) => ends.push(end.kind === 'shed' ? end.reason : end.kind));
    const cancel = flow.hold({ model: 'm', priority: 0, tenant: 'y' }, (end) => ends.push(end.kind));
    cancel();
    advance(1001);
    flow.started(req('z'))();
    expect(ends).toEqual(['wait-limit']);
    expect(flow.stats().queued).toBe(0);
    flow.stop();
  });

  it('keeps the last slot for a lighter tenant: a tenant over its share waits for it, the lighter one goes', () => {
    const { flow } = make();
    const big = backendView('c', { capacity: 4, metrics: vllmLoad(3, 0) });
    big.inflight = 3;
    for (let i = 0; i < 3; i++) flow.started(req('heavy'));
    flow.started(req('light'))(); // ended: light runs nothing, but is about
    expect(flow.mustWait(req('heavy'), [big])).toBe(true);
    expect(flow.mustWait(req('light'), [big])).toBe(false);
    // Alone, a tenant takes every slot.
    const { flow: alone } = make();
    for (let i = 0; i < 3; i++) alone.started(req('heavy'));
    expect(alone.mustWait(req('heavy'), [big])).toBe(false);
    flow.stop();
    alone.stop();
  });

  it('takes a queue at a server as its being full, whatever its slots were thought to be', () => {
    const { flow } = make();
    // Slots not learned yet (the default): its queue tells.
    const unlearned = backendView('d', { capacity: 256, metrics: vllmLoad(8, 2), inflight: 10 });
    expect(flow.mustWait(req('x'), [unlearned])).toBe(true);
    unlearned.metrics = vllmLoad(8, 0);
    unlearned.inflight = 8;
    expect(flow.mustWait(req('x'), [unlearned])).toBe(false);
    flow.stop();
  });

  it('holds nothing for a model without a server in rotation: the scheduler answers 503 at once', () => {
    const { flow } = make();
    const down = backendView('b', { capacity: 2, health: 'unhealthy' });
    expect(flow.mustWait(req('x'), [down])).toBe(false);
    setLoad(2);
    expect(flow.mustWait(req('x'), [down, server])).toBe(true);
    flow.stop();
  });
});
