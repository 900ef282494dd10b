/** A small dependency-free SVG of grouped bars: one group per workload, one bar per strategy. */

export interface ChartSeries {
  title: string;
  unit: string;
  /** values[workload][strategy] */
  values: number[][];
  /** Optional mark per workload (e.g. an upper bound), drawn as a dashed line. */
  marks?: Array<number | undefined>;
}

const COLORS = ['#9e9e9e', '#616161', '#ffb74d', '#64b5f6', '#2e7d32'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function groupedBarsSvg(workloads: string[], strategies: string[], panels: ChartSeries[]): string {
  const panelW = 900;
  const panelH = 260;
  const left = 70;
  const top = 40;
  const plotW = panelW - left - 20;
  const plotH = panelH - 90;
  let body = '';
  panels.forEach((panel, p) => {
    const y0 = p * panelH;
    const max = Math.max(1e-9, ...panel.values.flat(), ...(panel.marks ?? []).map((m) => m ?? 0)) * 1.1;
    body += `<text x="${left}" y="${y0 + 24}" font-size="15" font-weight="bold">${esc(panel.title)} (${esc(panel.unit)})</text>`;
    for (let t = 0; t <= 4; t++) {
      const v = (max * t) / 4;
      const y = y0 + top + plotH - (plotH * t) / 4;
      body += `<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e0e0e0"/>`;
      body += `<text x="${left - 6}" y="${y + 4}" font-size="10" text-anchor="end">${v >= 10 ? v.toFixed(0) : v.toFixed(2)}</text>`;
    }
    const groupW = plotW / workloads.length;
    const barW = (groupW * 0.8) / strategies.length;
    workloads.forEach((w, wi) => {
      const gx = left + wi * groupW + groupW * 0.1;
      strategies.forEach((_s, si) => {
        const v = panel.values[wi]?.[si] ?? 0;
        const h = (plotH * v) / max;
        const x = gx + si * barW;
        body += `<rect x="${x.toFixed(1)}" y="${(y0 + top + plotH - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(strategies[si]!)}: ${v.toFixed(3)}</title></rect>`;
      });
      const mark = panel.marks?.[wi];
      if (mark !== undefined) {
        const y = y0 + top + plotH - (plotH * mark) / max;
        body += `<line x1="${gx}" x2="${gx + groupW * 0.8}" y1="${y}" y2="${y}" stroke="#c62828" stroke-dasharray="4 3"/>`;
      }
      body += `<text x="${gx + groupW * 0.4}" y="${y0 + top + plotH + 16}" font-size="11" text-anchor="middle">${esc(w)}</text>`;
    });
  });
  const legendY = panels.length * panelH;
  let legend = '';
  strategies.forEach((s, si) => {
    legend += `<rect x="${left + si * 170}" y="${legendY}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`;
    legend += `<text x="${left + si * 170 + 16}" y="${legendY + 10}" font-size="11">${esc(s)}</text>`;
  });
  legend += `<line x1="${left}" x2="${left + 24}" y1="${legendY + 26}" y2="${legendY + 26}" stroke="#c62828" stroke-dasharray="4 3"/><text x="${left + 30}" y="${legendY + 30}" font-size="11">upper bound: one server with the fleet's whole KV cache</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${panelW}" height="${legendY + 44}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${body}${legend}</svg>\n`;
}
