/**
 * The live fleet view served at /dashboard on the admin port: one self-contained page that
 * polls /stats every second and keeps five minutes of history in the browser.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vLLM router: fleet</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #212121; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  .summary { display: flex; gap: 28px; margin: 12px 0 18px; }
  .summary div { font-size: 12px; color: #616161; }
  .summary b { display: block; font-size: 22px; color: #212121; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: right; padding: 5px 10px; border-bottom: 1px solid #eee; white-space: nowrap; }
  th:first-child, td:first-child, td.models, th.models { text-align: left; }
  .healthy { color: #2e7d32; } .unhealthy { color: #c62828; } .unknown { color: #9e9e9e; }
  svg { display: block; }
  #updated { color: #9e9e9e; font-size: 12px; }
</style>
</head>
<body>
<h1>vLLM router: fleet</h1>
<div id="updated">connecting...</div>
<div class="summary">
  <div>backends in rotation<b id="routable">-</b></div>
  <div>decisions / s<b id="rate">-</b></div>
  <div>prefix-cache hit share<b id="hits">-</b></div>
  <div>running / waiting<b id="queue">-</b></div>
  <div>held by flow control<b id="held">-</b></div>
</div>
<table>
  <thead><tr><th>backend</th><th>models</th><th>health</th><th>running</th><th>waiting</th><th>KV use</th><th>in flight</th><th>load</th><th>hit share</th><th>routed/s</th><th>TTFT predicted / measured</th><th>cache known from</th><th>scrape age</th><th>load, last 5 min</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<h2 style="font-size:15px;margin:22px 0 6px">Latest decisions, and why</h2>
<table>
  <thead><tr><th>time</th><th class="models">model</th><th>backend</th><th class="models">why</th><th class="models">fallbacks</th></tr></thead>
  <tbody id="decisions"></tbody>
</table>
<script>
const history = new Map();
const HISTORY = 300;
const pct = (x) => (x === null || x === undefined ? '-' : (x * 100).toFixed(1) + '%');
const num = (x) => (x === null || x === undefined ? '-' : String(x));
const ttft = (t) => (t.predictedMs === null || t.measuredMs === null ? '-'
  : t.predictedMs.toFixed(0) + ' / ' + t.measuredMs.toFixed(0) + ' ms' + (t.error === null ? '' : ' (' + (t.error * 100).toFixed(0) + '% off)'));
function spark(values) {
  // Newest sample at the right edge; the scale follows the largest load shown.
  const w = 160, h = 28, max = Math.max(0.05, ...values), n = values.length;
  const points = values.map((v, i) => (w - ((n - 1 - i) / (HISTORY - 1)) * w).toFixed(1) + ',' + (h - (v / max) * (h - 2) - 1).toFixed(1)).join(' ');
  return '<svg width="' + w + '" height="' + h + '"><polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="' + points + '"/></svg>';
}
async function tick() {
  try {
    const stats = await (await fetch('stats', { cache: 'no-store' })).json();
    let rate = 0, running = 0, waiting = 0, hits = 0, weight = 0;
    const rows = stats.backends.map((b) => {
      const h = history.get(b.id) || [];
      h.push(b.load); if (h.length > HISTORY) h.shift(); history.set(b.id, h);
      rate += b.routedPerSecond; running += b.running || 0; waiting += b.waiting || 0;
      if (b.prefixHitShare !== null) { hits += b.prefixHitShare; weight += 1; }
      const adapters = b.lora ? ' (adapters at work: ' + (b.lora.running.concat(b.lora.waiting).join(', ') || 'none') + ' of ' + b.lora.maxLoras + ')' : '';
      return '<tr data-backend="' + b.id + '"><td>' + b.id + '</td><td class="models">' + b.models.join(', ') + adapters + '</td><td class="' + b.health + '">' + b.health +
        '</td><td>' + num(b.running) + '</td><td>' + num(b.waiting) + '</td><td>' + pct(b.kvCacheUsage) + '</td><td>' + b.inflight +
        '</td><td>' + b.load.toFixed(3) + '</td><td>' + pct(b.prefixHitShare) + '</td><td class="routed">' + b.routedPerSecond.toFixed(1) +
        '</td><td class="ttft">' + ttft(b.ttft) + '</td><td class="cache" title="' + b.cache.why + '">' + b.cache.source + '</td><td>' + (b.lastScrapeAgeMs === null ? '-' : b.lastScrapeAgeMs + ' ms') + '</td><td>' + spark(h) + '</td></tr>';
    });
    document.getElementById('rows').innerHTML = rows.join('');
    document.getElementById('decisions').innerHTML = (stats.recentDecisions || []).slice(0, 10).map((d) => {
      const cached = d.promptTokens ? Math.round((100 * d.cachedTokens) / d.promptTokens) : 0;
      const why = d.candidates === 1 ? 'only eligible backend'
        : (cached > 0 ? cached + '% of ~' + d.promptTokens + ' prompt tokens already cached there; ' : 'no cached prefix anywhere; ')
          + (d.runnerUpScore !== null && Math.abs(d.score - d.runnerUpScore) < 1e-9 ? 'tie broken at random' : 'best score of ' + d.candidates + ' backends');
      return '<tr><td>' + d.time.slice(11, 23) + '</td><td class="models">' + d.model + '</td><td>' + d.backend + '</td><td class="models">' + why + '</td><td class="models">' + d.fallbacks.join(', ') + '</td></tr>';
    }).join('');
    document.getElementById('routable').textContent = stats.backends.filter((b) => b.routable).length + ' / ' + stats.backends.length;
    document.getElementById('rate').textContent = rate.toFixed(1);
    document.getElementById('hits').textContent = weight ? pct(hits / weight) : '-';
    document.getElementById('queue').textContent = running + ' / ' + waiting;
    const flow = stats.flowControl, held = document.getElementById('held');
    held.textContent = !flow || !flow.enabled ? 'off' : String(flow.queued);
    held.title = flow && flow.enabled ? flow.bands.map((band) => 'priority ' + band.priority + ': ' + band.tenants.map((t) => (t.tenant || '(no tenant)') + ' ' + t.queued).join(', ')).join('; ') : '';
    document.getElementById('updated').textContent = 'updated ' + stats.time;
  } catch (err) {
    document.getElementById('updated').textContent = 'cannot reach the router: ' + err;
  }
}
tick();
setInterval(tick, 1000);
</script>
</body>
</html>
`;
