#!/usr/bin/env node
/**
 * A terminal view of the fleet, like `top`, over the router's /stats (for people on SSH).
 *   node dist/monitor.js [--admin http://127.0.0.1:9190] [--interval 1000] [--once]
 */
import { parseArgs } from 'node:util';

export interface BackendStats {
  id: string;
  models: string[];
  health: string;
  running: number | null;
  waiting: number | null;
  kvCacheUsage: number | null;
  inflight: number;
  load: number;
  prefixHitShare: number | null;
  routedPerSecond: number;
  lastScrapeAgeMs: number | null;
  lastError: string | null;
}

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);

export interface FleetStats {
  time: string;
  backends: BackendStats[];
}

export function renderTable(stats: FleetStats): string {
  const head = ['BACKEND', 'MODELS', 'HEALTH', 'RUN', 'WAIT', 'KV', 'INFL', 'LOAD', 'HIT', 'REQ/S', 'AGE'];
  const rows = stats.backends.map((b) => [
    b.id,
    b.models.join(','),
    b.health,
    b.running === null ? '-' : String(b.running),
    b.waiting === null ? '-' : String(b.waiting),
    pct(b.kvCacheUsage),
    String(b.inflight),
    b.load.toFixed(3),
    pct(b.prefixHitShare),
    b.routedPerSecond.toFixed(1),
    b.lastScrapeAgeMs === null ? '-' : `${b.lastScrapeAgeMs}ms`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const total = stats.backends.reduce((a, b) => a + b.routedPerSecond, 0);
  const errors = stats.backends.filter((b) => b.lastError).map((b) => `  ${b.id}: ${b.lastError}`);
  return [
    `vllm-router  ${stats.time}  ${stats.backends.filter((b) => b.health !== 'unhealthy').length}/${stats.backends.length} in rotation  ${total.toFixed(1)} decisions/s`,
    '',
    line(head),
    ...rows.map(line),
    ...(errors.length ? ['', 'errors:', ...errors] : []),
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { admin: { type: 'string', default: 'http://127.0.0.1:9190' }, interval: { type: 'string', default: '1000' }, once: { type: 'boolean', default: false } },
  });
  const interval = Number(values.interval);
  if (!Number.isFinite(interval) || interval < 100) throw new Error(`--interval must be at least 100 ms, got '${values.interval}'`);
  for (;;) {
    let out: string;
    try {
      out = renderTable((await (await fetch(`${values.admin}/stats`, { signal: AbortSignal.timeout(2000) })).json()) as never);
    } catch (err) {
      out = `cannot reach the router at ${values.admin}: ${(err as Error).message}`;
    }
    if (values.once) return void console.log(out);
    process.stdout.write(`\x1b[H\x1b[2J${out}\n`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err) => {
    console.error((err as Error).message);
    process.exit(2);
  });
}
