import { describe, expect, it } from 'vitest';
import { createHeldRequests, type HeldRequest, type HoldEnd } from './held-requests.js';

function harness(maxQueued = 100) {
  const held = createHeldRequests(() => maxQueued);
  const log: Array<{ id: string; end: HoldEnd['kind']; reason?: string }> = [];
  const make = (id: string, tenant: string, priority = 0, model = 'm', deadlineMs = 1e9): HeldRequest => ({
    model,
    priority,
    tenant,
    deadlineMs,
    resume: (end) => log.push({ id, end: end.kind, ...(end.kind === 'shed' ? { reason: end.reason } : {}) }),
  });
  const hold = (id: string, tenant: string, priority = 0, model = 'm', deadlineMs = 1e9) => held.hold(make(id, tenant, priority, model, deadlineMs), 0);
  /** Lets `n` requests go, one slot at a time. */
  const release = (n: number, model = 'm') => {
    let slots = n;
    held.releaseWhile((r) => r.model === model && slots-- > 0, 1);
  };
  return { held, log, hold, release, make, ids: () => log.map((l) => l.id) };
}

describe('held requests', () => {
  it('takes tenants in turn, each first come first served, so a heavy tenant does not starve a light one', () => {
    const h = harness();
    for (let i = 0; i < 10; i++) h.hold(`heavy-${i}`, 'heavy');
    h.hold('light-0', 'light');
    h.hold('light-1', 'light');
    h.release(5);
    expect(h.ids()).toEqual(['heavy-0', 'light-0', 'heavy-1', 'light-1', 'heavy-2']);
    expect(h.held.size).toBe(7);
  });

  it('lets a higher band go first, always, and a lower one only when nothing above can run', () => {
    const h = harness();
    h.hold('low-0', 'a', 0);
    h.hold('high-0', 'b', 5);
    h.hold('low-1', 'a', 0);
    h.hold('high-1', 'c', 5);
    h.release(3);
    expect(h.ids()).toEqual(['high-0', 'high-1', 'low-0']);
    // A high-priority request for a saturated model does not hold back another model's.
    h.hold('high-x', 'b', 5, 'x');
    h.held.releaseWhile((r) => r.model === 'm', 2);
    expect(h.ids().slice(3)).toEqual(['low-1']);
    expect(h.held.heldFor('x')).toBe(1);
  });

  it("sheds the lowest band's heaviest tenant's newest request when full, and refuses what ranks no higher", () => {
    const h = harness(3);
    expect(h.hold('a-0', 'a', 0)).toBe(true);
    expect(h.hold('a-1', 'a', 0)).toBe(true);
    expect(h.hold('b-0', 'b', 0)).toBe(true);
    expect(h.hold('c-0', 'c', 0)).toBe(false);
    expect(h.hold('vip', 'v', 9)).toBe(true);
    expect(h.log).toEqual([{ id: 'a-1', end: 'shed', reason: 'displaced' }]);
    h.release(10);
    expect(h.ids().slice(1)).toEqual(['vip', 'a-0', 'b-0']);
  });

  it('sheds what waited past its deadline, and forgets a request whose client left', () => {
    const h = harness();
    h.hold('soon', 'a', 0, 'm', 100);
    h.hold('later', 'a', 0, 'm', 500);
    const gone = h.make('gone', 'b');
    h.held.hold(gone, 0);
    expect(h.held.expire(200)).toBe(1);
    expect(h.log).toEqual([{ id: 'soon', end: 'shed', reason: 'wait-limit' }]);
    expect(h.held.cancel(gone)).toBe(true);
    expect(h.held.cancel(gone)).toBe(false);
    expect(h.held.stats()).toEqual({ queued: 1, bands: [{ priority: 0, tenants: [{ tenant: 'a', queued: 1 }] }] });
  });
});
