import type { Picker } from '../types.js';

/** Uniformly random order: a baseline, and a way to turn routing intelligence off. */
export function createRandomPicker(random: () => number = Math.random): Picker {
  return {
    name: 'random',
    rank(scored) {
      const out = [...scored];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
}
