/**
 * Minimal Prometheus text exposition (format 0.0.4), written the way vLLM 0.32 renders its
 * metrics: labels sorted by name (`engine` before `le` before `model_name`), float values.
 */

export type Labels = ReadonlyArray<readonly [string, string]>;

/** prometheus_client's floatToGoString: 3 -> "3.0", Infinity -> "+Inf". */
export function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value}.0`;
  return String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function formatLabels(labels: Labels): string {
  if (labels.length === 0) return '';
  const sorted = [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${sorted.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

export function sampleLine(name: string, labels: Labels, value: number): string {
  return `${name}${formatLabels(labels)} ${formatValue(value)}`;
}

export function header(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): string[] {
  return [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`];
}

export interface Histogram {
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  observe(value: number): void;
  count(): number;
  sum(): number;
  render(labels: Labels): string[];
}

export function createHistogram(name: string, help: string, buckets: readonly number[]): Histogram {
  const bounds = [...buckets].sort((a, b) => a - b);
  const counts = new Array<number>(bounds.length).fill(0);
  let total = 0;
  let sum = 0;
  return {
    name,
    help,
    buckets: bounds,
    observe(value) {
      total++;
      sum += value;
      for (let i = 0; i < bounds.length; i++) {
        if (value <= (bounds[i] as number)) {
          counts[i] = (counts[i] as number) + 1;
          break;
        }
      }
    },
    count: () => total,
    sum: () => sum,
    render(labels) {
      const lines = header(name, 'histogram', help);
      let cumulative = 0;
      for (let i = 0; i < bounds.length; i++) {
        cumulative += counts[i] as number;
        lines.push(sampleLine(`${name}_bucket`, [...labels, ['le', formatValue(bounds[i] as number)]], cumulative));
      }
      lines.push(sampleLine(`${name}_bucket`, [...labels, ['le', '+Inf']], total));
      lines.push(sampleLine(`${name}_count`, labels, total));
      lines.push(sampleLine(`${name}_sum`, labels, sum));
      return lines;
    },
  };
}

/** vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to maxValue. */
export function build125Buckets(maxValue: number): number[] {
  const buckets: number[] = [];
  for (let scale = 1; ; scale *= 10) {
    for (const m of [1, 2, 5]) {
      if (m * scale > maxValue) return buckets;
      buckets.push(m * scale);
    }
  }
}
