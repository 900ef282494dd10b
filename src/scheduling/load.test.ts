import { describe, expect, it } from 'vitest';
import { backendView, vllmLoad } from '../../test/helpers/backend-view.js';
import { estimateQueue } from './load.js';

/** Read with 8 running and 1 waiting in two scrapes (saturated), all 9 ours; `finished` of them ended since, `sent` more went there. */
const saturatedWhenRead = (finished: number, sent: number) =>
  backendView('a', {
    capacity: 8,
    metrics: vllmLoad(8, 1),
    queueing: true,
    inflight: 9 - finished + sent,
    unseenFinishes: finished,
    unseenDispatches: sent,
  });

describe('estimated queue', () => {
  it('keeps a server saturated when read full until its finishes have drained the queue', () => {
    expect(estimateQueue(saturatedWhenRead(0, 0))).toEqual({ running: 8, waiting: 1, full: true, free: 0 });
    // The first finish admits the waiting request: still full.
    expect(estimateQueue(saturatedWhenRead(1, 0))).toEqual({ running: 8, waiting: 0, full: true, free: 0 });
  });

  it('gives a saturated server room for the slots its finishes freed beyond its queue', () => {
    expect(estimateQueue(saturatedWhenRead(3, 0))).toEqual({ running: 6, waiting: 0, full: false, free: 2 });
    // Requests sent since take that room first.
    expect(estimateQueue(saturatedWhenRead(3, 1))).toEqual({ running: 7, waiting: 0, full: false, free: 1 });
    expect(estimateQueue(saturatedWhenRead(3, 3))).toEqual({ running: 8, waiting: 1, full: true, free: 0 });
  });

  it('counts a saturated server full at the running count it was read with, though its slots were thought more', () => {
    const b = { ...saturatedWhenRead(2, 0), capacity: 256 };
    expect(estimateQueue(b)).toMatchObject({ running: 7, waiting: 0, full: false, free: 1 });
    expect(estimateQueue({ ...b, inflight: 9, unseenDispatches: 2 })).toMatchObject({ running: 8, waiting: 1, full: true });
  });
});
