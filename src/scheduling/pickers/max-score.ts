import type { Picker, ScoredBackend } from '../types.js';

const TIE = 1e-9;

/**
 * Best score first. Ties are broken at random so that an idle fleet shares work instead of
 * sending everything to the first backend listed.
 */
export function createMaxScorePicker(random: () => number = Math.random): Picker {
  return {
    name: 'max-score',
    rank(scored) {
      const keyed = scored.map((s) => ({ s, r: random() }));
      keyed.sort((a, b) => (Math.abs(b.s.score - a.s.score) > TIE ? b.s.score - a.s.score : a.r - b.r));
      return keyed.map((k): ScoredBackend => k.s);
    },
  };
}
