/** A grouped bar chart on a log scale, as SVG markup (no dependencies). */
export interface Panel {
  title: string;
  /** X-axis groups, e.g. payload sizes. */
  groups: readonly string[];
  /** One bar per series in every group; values[series][group], all > 0. */
  series: ReadonlyArray<{ name: string; values: readonly number[] }>;
}

const COLORS = ['#8c8c8c', '#e6a23c', '#2f7ed8', '#67c23a', '#9b59b6', '#e74c3c', '#16a085'];
const W = 460;
const H = 260;
const M = { top: 30, right: 10, bottom: 30, left: 50 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function panelSvg(panel: Panel, x0: number): string {
  const values = panel.series.flatMap((s) => s.values);
  const lo = Math.floor(Math.log10(Math.min(...values)));
  const hi = Math.ceil(Math.log10(Math.max(...values)));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const y = (v: number) => M.top + plotH * (1 - (Math.log10(v) - lo) / Math.max(1, hi - lo));
  const out = [`<g transform="translate(${x0},0)">`, `<text x="${W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(panel.title)}</text>`];
  for (let e = lo; e <= hi; e++) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 4}" y="${y(10 ** e) + 4}" text-anchor="end">${fmt(10 ** e)}</text>`);
  }
  const groupW = plotW / panel.groups.length;
  const barW = (groupW * 0.8) / panel.series.length;
  panel.groups.forEach((group, g) => {
    const gx = M.left + g * groupW + groupW * 0.1;
    out.push(`<text x="${gx + groupW * 0.4}" y="${H - 10}" text-anchor="middle">${esc(group)}</text>`);
    panel.series.forEach((s, k) => {
      const v = s.values[g]!;
      out.push(`<rect x="${gx + k * barW}" y="${y(v)}" width="${barW - 1}" height="${M.top + plotH - y(v)}" fill="${COLORS[k % COLORS.length]}"><title>${esc(s.name)}: ${fmt(v)}</title></rect>`);
    });
  });
  out.push('</g>');
  return out.join('\n');
}

/** Panels side by side, with one legend for the series (the same in every panel). */
export function chartSvg(panels: readonly Panel[]): string {
  const names = panels[0]?.series.map((s) => s.name) ?? [];
  // Each entry as wide as its label (about 6.5 px a character at 11 px).
  const starts = names.map((_, k) => names.slice(0, k).reduce((x, name) => x + 28 + name.length * 6.5, 10));
  const legend = names.map(
    (name, k) => `<rect x="${starts[k]}" y="${H + 6}" width="10" height="10" fill="${COLORS[k % COLORS.length]}"/><text x="${starts[k]! + 14}" y="${H + 15}">${esc(name)}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W * panels.length}" height="${H + 24}" font-family="sans-serif" font-size="11">`,
    '<rect width="100%" height="100%" fill="white"/>',
    ...panels.map((p, i) => panelSvg(p, i * W)),
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}
