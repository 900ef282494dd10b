/** Maps values where lower is better to [0, 1]: the lowest gets 1, the highest 0. */
export function lowerIsBetter(values: readonly number[]): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min;
  return values.map((v) => (range > 0 ? (max - v) / range : 1));
}
