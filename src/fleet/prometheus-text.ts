/** One sample of the Prometheus text exposition format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the Prometheus text format (version 0.0.4, which vLLM serves), keeping only the
 * metric families `wanted` accepts so that large /metrics pages cost little. Malformed lines
 * are skipped and counted rather than failing the whole page.
 */
export function parsePrometheusText(
  text: string,
  wanted: (name: string) => boolean = () => true,
): { samples: Sample[]; malformedLines: number } {
  const samples: Sample[] = [];
  let malformedLines = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const lineStart = start;
    start = end + 1;
    // Most lines are series nobody asked for (histogram buckets): read only their name.
    let i = lineStart;
    while (i < end && text.charCodeAt(i) <= 32) i++;
    if (i === end || text.charCodeAt(i) === 35 /* # */) continue;
    if (!wanted(text.slice(i, nameEnd(text, i, end)))) continue;

    const line = text.slice(lineStart, end).trim();

    const nameStop = nameEnd(line, 0, line.length);
    const name = line.slice(0, nameStop);
    if (!wanted(name)) continue;
    if (nameStop === line.length || !/^[A-Za-z_:][A-Za-z0-9_:]*$/.test(name)) {
      malformedLines++;
      continue;
    }
    let rest = line.slice(nameStop);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const parsed = parseLabels(rest);
      if (!parsed) {
        malformedLines++;
        continue;
      }
      labels = parsed.labels;
      rest = rest.slice(parsed.length);
    }
    const valueText = rest.trim().split(/[ \t]+/)[0] ?? '';
    const value = parseValue(valueText);
    if (value === undefined) {
      malformedLines++;
      continue;
    }
    samples.push({ name, labels, value });
  }
  return { samples, malformedLines };
}

/** Characters that end a metric name: '{', space, tab, CR. */
const ENDS_NAME = new Uint8Array(128);
for (const c of '{ \t\r') ENDS_NAME[c.charCodeAt(0)] = 1;

/** Where the metric name starting at `from` ends: its first '{', blank or CR, else `to`. */
function nameEnd(text: string, from: number, to: number): number {
  let i = from;
  while (i < to && !ENDS_NAME[text.charCodeAt(i)]) i++;
  return i;
}

function parseValue(text: string): number | undefined {
  switch (text) {
    case '+Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  if (text === '') return undefined;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

/** Parses `{a="x",b="y\"z"}` at the start of `text`; returns the labels and chars consumed. */
function parseLabels(text: string): { labels: Record<string, string>; length: number } | undefined {
  const labels: Record<string, string> = {};
  let i = 1;
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i++;
    if (text[i] === '}') return { labels, length: i + 1 };
    const eq = text.indexOf('=', i);
    if (eq === -1 || text[eq + 1] !== '"') return undefined;
    const key = text.slice(i, eq).trim();
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        value += next === 'n' ? '\n' : (next ?? '');
      } else {
        value += text[j];
      }
    }
    if (j >= text.length) return undefined;
    labels[key] = value;
    i = j + 1;
  }
}
