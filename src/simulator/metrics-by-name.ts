/**
 * A /metrics page cut down to the series asked for by name, as prometheus_client serves
 * `?name[]=a&name[]=b` (vLLM does on `/metrics/`): the samples of those names, each family's
 * HELP and TYPE lines kept only where one of its samples is.
 */
export function keepSeries(page: string, names: ReadonlySet<string>): string {
  const out: string[] = [];
  let headers: string[] = [];
  let family = '';
  for (const line of page.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const name = line.split(' ', 3)[2] ?? '';
      if (name !== family) {
        family = name;
        headers = [];
      }
      headers.push(line);
      continue;
    }
    const end = line.search(/[{ ]/);
    if (!names.has(end < 0 ? line : line.slice(0, end))) continue;
    out.push(...headers, line);
    headers = []; // written once, before the family's first kept sample
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
