import { describe, expect, it } from 'vitest';
import type { Backend } from './backend.js';
import { emptyRecentRates, updateRecentRates } from './recent-rates.js';

/** A scrape: the server's completion counter, after `ours` of our requests ended there since the last one. */
function scrapes(steps: Array<{ completed: number; ours: number }>) {
  const b = { finished: 0, routed: 0, recent: emptyRecentRates() } as unknown as Backend;
  for (const { completed, ours } of steps) {
    b.finished += ours;
    updateRecentRates(b, { prefixCacheHits: undefined, prefixCacheQueries: undefined, requestsCompleted: completed });
  }
  return b.recent.othersShare;
}

describe("a backend's share of other clients' requests", () => {
  it('is unknown until two scrapes have seen requests complete', () => {
    expect(scrapes([])).toBeUndefined();
    expect(scrapes([{ completed: 5, ours: 0 }])).toBeUndefined();
  });

  it('is none when every request it completed was ours, even when our count trails its by a scrape', () => {
    expect(scrapes([{ completed: 0, ours: 0 }, { completed: 4, ours: 4 }, { completed: 8, ours: 4 }])).toBe(0);
    // Two of ours end just after the server counted them: one scrape's surplus, made up by the next.
    expect(scrapes([{ completed: 0, ours: 0 }, { completed: 4, ours: 2 }, { completed: 8, ours: 6 }, { completed: 12, ours: 4 }])).toBe(0);
  });

  it("follows the share others send (other router replicas), and ignores requests of ours it never counted", () => {
    const share = scrapes([{ completed: 0, ours: 0 }, ...Array.from({ length: 10 }, (_, i) => ({ completed: 9 * (i + 1), ours: 3 }))]);
    expect(share).toBeCloseTo(2 / 3, 5);
    // Ours cut short (client gone) are counted by us, not by the server: they do not make others' share negative.
    expect(scrapes([{ completed: 0, ours: 0 }, { completed: 2, ours: 5 }, { completed: 4, ours: 5 }])).toBe(0);
  });
});
