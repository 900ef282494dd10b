import { describe, expect, it } from 'vitest';
import { rendezvousRanks } from './rendezvous.js';

/** Index of a key's home among `ids` (rank 0), -1 without ids. */
const rendezvousHome = (key: number, ids: readonly string[]) => rendezvousRanks(key, ids).indexOf(0);

const ids = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000', '10.0.0.4:8000'];
const keys = Array.from({ length: 4000 }, (_, i) => i * 2654435761 + 12345);

describe('rendezvous ranks: the home', () => {
  it('names the same backend whatever order the backends are listed in', () => {
    const reversed = [...ids].reverse();
    for (const key of keys.slice(0, 500)) expect(reversed[rendezvousHome(key, reversed)]).toBe(ids[rendezvousHome(key, ids)]);
  });

  it('spreads keys evenly', () => {
    const counts = new Array<number>(ids.length).fill(0);
    for (const key of keys) counts[rendezvousHome(key, ids)]!++;
    for (const c of counts) expect(c).toBeGreaterThan((keys.length / ids.length) * 0.85);
  });

  it('moves only the keys of a backend that leaves', () => {
    const without = ids.filter((id) => id !== ids[2]);
    for (const key of keys) {
      const before = ids[rendezvousHome(key, ids)]!;
      const after = without[rendezvousHome(key, without)]!;
      if (before !== ids[2]) expect(after).toBe(before);
    }
  });

  it('uses the high bits of a 53-bit key too', () => {
    const homes = new Set<number>();
    for (let k = 0; k < 64; k++) homes.add(rendezvousHome(k * 4294967296, ids));
    expect(homes.size).toBe(ids.length);
  });

  it('has no home without backends', () => {
    expect(rendezvousHome(1, [])).toBe(-1);
  });
});
