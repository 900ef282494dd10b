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
  const make = (enabled = true) => {
    let t = 0;
    const flow = createFlowController({ config: () => flowControlSchema.parse({ enabled, maxWaitMs: 1000 }), candidates: () => [server], now: () => t });
    return { flow, advance: (ms: number) => (t += ms) };
  };

  it('holds only while every server of the model is saturated, and then everything behind the first held', () => {
    const { flow } = make();
    setLoad(1);
    expect(flow.mustWait('m', [server])).toBe(false);
    setLoad(2);
    expect(flow.mustWait('m', [server])).toBe(true);
    const ends: HoldEnd['kind'][] = [];
    flow.hold({ model: 'm', priority: 0, tenant: 'x' }, (end) => ends.push(end.kind));
    // Room again, but one is held: a newcomer queues behind it.
    setLoad(1);
    expect(flow.mustWait('m', [server])).toBe(true);
    // Let go synchronously when woken: what it routes counts before the next is looked at.
    flow.wake();
    expect(ends).toEqual(['release']);
    expect(flow.mustWait('m', [server])).toBe(false);
    flow.stop();
    expect(make(false).flow.mustWait('m', [server])).toBe(false);
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
    flow.wake();
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
    flow.wake();
    expect(ends).toEqual(['wait-limit']);
    expect(flow.stats().queued).toBe(0);
    flow.stop();
  });

  it('holds nothing for a model without a server in rotation: the scheduler answers 503 at once', () => {
    const { flow } = make();
    const down = backendView('b', { capacity: 2, health: 'unhealthy' });
    expect(flow.mustWait('m', [down])).toBe(false);
    setLoad(2);
    expect(flow.mustWait('m', [down, server])).toBe(true);
    flow.stop();
  });
});
