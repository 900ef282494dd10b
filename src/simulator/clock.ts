/**
 * Time source of the engine. The real clock drives servers; the virtual clock lets tests and
 * offline studies run the same scheduler instantly and deterministically.
 */
import { performance } from 'node:perf_hooks';

export type Cancel = () => void;

export interface Clock {
  /** Milliseconds on a monotonic timeline. */
  now(): number;
  /** Runs fn once, delayMs from now (at once, but asynchronously, when delayMs <= 0). */
  after(delayMs: number, fn: () => void): Cancel;
}

export function createRealClock(): Clock {
  return {
    now: () => performance.now(),
    after(delayMs, fn) {
      // setTimeout has 1 ms granularity; callers keep absolute deadlines and catch up.
      if (delayMs <= 0) {
        const handle = setImmediate(fn);
        return () => clearImmediate(handle);
      }
      const handle = setTimeout(fn, delayMs);
      return () => clearTimeout(handle);
    },
  };
}

export interface VirtualClock extends Clock {
  /** Runs timers in time order until none is left or maxTimers ran; returns how many ran. */
  runUntilIdle(maxTimers?: number): number;
  /** Runs timers due up to `untilMs`, then sets the time to it. */
  advanceTo(untilMs: number, maxTimers?: number): number;
  pending(): number;
}

interface VirtualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export function createVirtualClock(startMs = 0): VirtualClock {
  let now = startMs;
  let seq = 0;
  let timers: VirtualTimer[] = [];

  function popNext(limit: number): VirtualTimer | undefined {
    timers = timers.filter((t) => !t.cancelled);
    let best: VirtualTimer | undefined;
    for (const t of timers) {
      if (t.at <= limit && (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq))) best = t;
    }
    if (best) timers.splice(timers.indexOf(best), 1);
    return best;
  }

  function run(limit: number, maxTimers: number): number {
    let ran = 0;
    while (ran < maxTimers) {
      const timer = popNext(limit);
      if (!timer) break;
      now = Math.max(now, timer.at);
      timer.fn();
      ran++;
    }
    return ran;
  }

  return {
    now: () => now,
    after(delayMs, fn) {
      const timer: VirtualTimer = { at: now + Math.max(0, delayMs), seq: seq++, fn, cancelled: false };
      timers.push(timer);
      return () => {
        timer.cancelled = true;
      };
    },
    runUntilIdle: (maxTimers = 1_000_000) => run(Number.POSITIVE_INFINITY, maxTimers),
    advanceTo(untilMs, maxTimers = 1_000_000) {
      const ran = run(untilMs, maxTimers);
      now = Math.max(now, untilMs);
      return ran;
    },
    pending: () => timers.filter((t) => !t.cancelled).length,
  };
}
